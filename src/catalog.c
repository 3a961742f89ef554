/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Queue names and the per-backend queue cache.
 *
 * The hot paths look a queue up by name on every call.  Going to mq.queue
 * each time would cost an index scan per message, so each backend keeps a
 * hash table of the queues it has used.  The whole table is dropped when
 * a relcache invalidation for mq.queue arrives: mq's administrative
 * functions send one (mq._invalidate_queue_cache) whenever they change a
 * row, and it is delivered at commit to every backend, or undone locally
 * at abort.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(mq_check_name);
PG_FUNCTION_INFO_V1(mq_invalidate_queue_cache);

/* name -> MqQueue; NULL when empty or invalidated */
static HTAB *mq_queue_cache = NULL;

/* name -> kind of destination ('q', 't', 'x'), for the outbox trigger */
typedef struct MqDest
{
	char		name[NAMEDATALEN];
	char		kind;
	int32		id;				/* queue_id, topic_id or exchange_id */
} MqDest;
static HTAB *mq_dest_cache = NULL;

static MqStmt mq_stmt_dest_lookup = {
	"SELECT kind, id FROM mq._kind_of($1)", 1, {TEXTOID}
};

/* OID of mq.queue, looked up once; InvalidOid until then */
static Oid	mq_queue_relid = InvalidOid;

/* OIDs of mq.msg_id_seq and mq.outbox_seq, likewise */
static Oid	mq_msg_id_seq_relid = InvalidOid;
static Oid	mq_outbox_seq_relid = InvalidOid;

/*
 * Bumped by every invalidation of mq's catalog cache: other per-backend
 * caches (direct.c's table descriptions) compare it with the value they
 * were built under.
 */
uint64		mq_catalog_generation = 1;

static MqStmt mq_stmt_queue_lookup = {
	"SELECT queue_id, visibility_timeout, max_attempts,"
	"       dead_letter_queue_id IS NOT NULL, message_ttl, dedup_window"
	"  FROM mq.queue WHERE queue_name OPERATOR(pg_catalog.=) $1",
	1, {TEXTOID}
};

/*
 * mq_queue_cache_invalidate
 *		Relcache callback: drop the cache when mq.queue (or everything) is
 *		invalidated.
 */
static void
mq_queue_cache_invalidate(Datum arg, Oid relid)
{
	if (relid != InvalidOid && relid != mq_queue_relid)
		return;
	if (mq_queue_cache != NULL)
	{
		hash_destroy(mq_queue_cache);
		mq_queue_cache = NULL;
	}
	if (mq_dest_cache != NULL)
	{
		hash_destroy(mq_dest_cache);
		mq_dest_cache = NULL;
	}
	/* the extension may have been dropped and created again */
	mq_queue_relid = InvalidOid;
	mq_msg_id_seq_relid = InvalidOid;
	mq_outbox_seq_relid = InvalidOid;
	mq_catalog_generation++;
}

/*
 * mq_catalog_init
 *		Register the invalidation callback; called once from _PG_init.
 */
void
mq_catalog_init(void)
{
	CacheRegisterRelcacheCallback(mq_queue_cache_invalidate, (Datum) 0);
}

/*
 * mq_queue_relid_get
 *		OID of mq.queue, cached.
 */
Oid
mq_queue_relid_get(void)
{
	if (!OidIsValid(mq_queue_relid))
	{
		Oid			nsp = get_namespace_oid("mq", false);

		mq_queue_relid = get_relname_relid("queue", nsp);
		if (!OidIsValid(mq_queue_relid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table mq.queue is missing"),
					 errhint("Reinstall the extension with DROP EXTENSION mq; CREATE EXTENSION mq.")));
	}
	return mq_queue_relid;
}

/*
 * mq_sequence_relid
 *		OID of sequence mq.<name>, cached in *cache until the next
 *		invalidation.
 */
static Oid
mq_sequence_relid(const char *name, Oid *cache)
{
	if (!OidIsValid(*cache))
	{
		Oid			nsp = get_namespace_oid("mq", false);
		Oid			relid;

		(void) mq_queue_relid_get();
		relid = get_relname_relid(name, nsp);
		if (!OidIsValid(relid))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("sequence mq.%s is missing", name),
					 errhint("Reinstall the extension with DROP EXTENSION mq; CREATE EXTENSION mq.")));
		*cache = relid;
	}
	return *cache;
}

/*
 * mq_next_msg_id
 *		nextval('mq.msg_id_seq'), without a catalog look-up per call.
 */
int64
mq_next_msg_id(void)
{
	return nextval_internal(mq_sequence_relid("msg_id_seq", &mq_msg_id_seq_relid),
							true);
}

/*
 * mq_next_outbox_seq
 *		nextval('mq.outbox_seq'), likewise: the relay order of outbox rows.
 */
int64
mq_next_outbox_seq(void)
{
	return nextval_internal(mq_sequence_relid("outbox_seq", &mq_outbox_seq_relid),
							true);
}

/*
 * mq_outbox_seq_allocated
 *		The highest seq mq.outbox_seq has handed out (0: none yet).  Every
 *		outbox row written by mq.publish or by an INSERT that takes the
 *		default is at or below it; a row above it was loaded with its seq
 *		by a restore that has not set the sequence yet (pg_dump sets
 *		sequences after all table data).
 */
int64
mq_outbox_seq_allocated(void)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value =
		ObjectIdGetDatum(mq_sequence_relid("outbox_seq", &mq_outbox_seq_relid));
	fcinfo->args[0].isnull = false;
	result = pg_sequence_last_value(fcinfo);
	return fcinfo->isnull ? 0 : DatumGetInt64(result);
}

/*
 * mq_check_queue_name
 *		Raise an error unless name (len bytes, not NUL-terminated) is a valid
 *		queue name: 1 to 63 bytes of ASCII letters, digits, '_' and '-',
 *		starting with a letter or '_'.
 */
void
mq_check_queue_name(const char *name, int len)
{
	int			i;

	if (len > MQ_MAX_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("queue name \"%.*s...\" is too long", 20, name),
				 errdetail("A queue name may be at most %d bytes long; this one has %d.",
						   MQ_MAX_NAME_LEN, len)));
	for (i = 0; i < len; i++)
	{
		char		c = name[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			(i > 0 && ((c >= '0' && c <= '9') || c == '-')))
			continue;
		break;
	}
	if (len == 0 || i < len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid queue name \"%.*s\"", len, name),
				 errdetail("A queue name starts with a letter or underscore and contains only letters, digits, underscores and hyphens.")));
}

/*
 * mq_check_name
 *		SQL-callable name check: mq._check_name(text).
 */
Datum
mq_check_name(PG_FUNCTION_ARGS)
{
	text	   *name = PG_GETARG_TEXT_PP(0);

	mq_check_queue_name(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));
	PG_RETURN_VOID();
}

/*
 * mq_invalidate_queue_cache
 *		SQL-callable: make every backend drop its queue cache at commit.
 */
Datum
mq_invalidate_queue_cache(PG_FUNCTION_ARGS)
{
	CacheInvalidateRelcacheByRelid(mq_queue_relid_get());
	PG_RETURN_VOID();
}

/*
 * mq_queue_load
 *		Read one queue's row into entry.  Returns false if there is none.
 *		Connects to SPI itself (nested if the caller is connected).
 */
static bool
mq_queue_load(text *queue_name, MqQueue *entry)
{
	Datum		values[1];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	bool		found = false;

	SPI_connect();
	values[0] = PointerGetDatum(queue_name);
	mq_stmt_exec(&mq_stmt_queue_lookup, values, NULL, 1);
	if (SPI_processed > 0)
	{
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		entry->queue_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		entry->visibility_timeout =
			*DatumGetIntervalP(SPI_getbinval(tup, desc, 2, &isnull));
		entry->max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		entry->has_dlq = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		d = SPI_getbinval(tup, desc, 5, &isnull);
		entry->has_ttl = !isnull;
		if (!isnull)
			entry->message_ttl = *DatumGetIntervalP(d);
		entry->dedup_window = *DatumGetIntervalP(SPI_getbinval(tup, desc, 6, &isnull));
		found = true;
	}
	SPI_finish();
	return found;
}

/*
 * mq_name_cache_create
 *		A backend-local hash table keyed by a NUL-padded name of NAMEDATALEN
 *		bytes, living until invalidated.
 */
static HTAB *
mq_name_cache_create(const char *what, Size entrysize)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = NAMEDATALEN;
	ctl.entrysize = entrysize;
	ctl.hcxt = TopMemoryContext;
	return hash_create(what, 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/*
 * mq_dest_lookup
 *		The kind of the queue, topic or exchange called name ('q', 't', 'x'),
 *		or 0 if there is none; its id in *id.  Cached like queues (any change
 *		of queues, topics or exchanges invalidates mq.queue's relcache
 *		entry).
 */
char
mq_dest_lookup(const char *name, int len, int32 *id)
{
	char		key[NAMEDATALEN];
	MqDest	   *entry;
	bool		found;
	bool		isnull;
	Datum		values[1];
	char		kind;
	int32		kid = 0;

	*id = 0;
	if (len > MQ_MAX_NAME_LEN)
		return 0;
	memset(key, 0, sizeof(key));
	memcpy(key, name, len);
	if (mq_dest_cache != NULL)
	{
		entry = hash_search(mq_dest_cache, key, HASH_FIND, NULL);
		if (entry != NULL)
		{
			*id = entry->id;
			return entry->kind;
		}
	}

	(void) mq_queue_relid_get();
	SPI_connect();
	values[0] = PointerGetDatum(cstring_to_text_with_len(name, len));
	mq_stmt_exec(&mq_stmt_dest_lookup, values, NULL, 1);
	kind = 0;
	if (SPI_processed > 0)
	{
		/* mq._kind_of returns one all-NULL row for an unknown name */
		Datum		k = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			kind = DatumGetChar(k);
			kid = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 2, &isnull));
		}
	}
	SPI_finish();
	if (kind == 0)
		return 0;

	if (mq_dest_cache == NULL)
		mq_dest_cache = mq_name_cache_create("mq destination cache", sizeof(MqDest));
	entry = hash_search(mq_dest_cache, key, HASH_ENTER, &found);
	entry->kind = kind;
	entry->id = kid;
	*id = kid;
	return kind;
}

/*
 * mq_dest_kind
 *		mq_dest_lookup without the id.
 */
char
mq_dest_kind(const char *name, int len)
{
	int32		id;

	return mq_dest_lookup(name, len, &id);
}

/*
 * mq_queue_get
 *		The cached queue called queue_name; an error if it does not exist.
 *
 * A cache miss reads mq.queue through SPI.  The result
 * is valid until the next invalidation, i.e. for the rest of the calling
 * function as long as it does not process invalidations in between; callers
 * copy what they need.
 */
const MqQueue *
mq_queue_get(text *queue_name)
{
	const char *name = VARDATA_ANY(queue_name);
	int			len = VARSIZE_ANY_EXHDR(queue_name);
	char		key[NAMEDATALEN];
	MqQueue    *entry;
	MqQueue		loaded;
	bool		found;

	if (len > MQ_MAX_NAME_LEN)
		mq_check_queue_name(name, len);
	memset(key, 0, sizeof(key));
	memcpy(key, name, len);

	if (mq_queue_cache != NULL)
	{
		entry = hash_search(mq_queue_cache, key, HASH_FIND, NULL);
		if (entry != NULL)
			return entry;
	}

	(void) mq_queue_relid_get();
	if (!mq_queue_load(queue_name, &loaded))
	{
		mq_check_queue_name(name, len);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("queue \"%s\" does not exist", key),
				 errhint("Create it with mq.create_queue().")));
	}

	/* loading may have processed an invalidation; (re)build the table */
	if (mq_queue_cache == NULL)
		mq_queue_cache = mq_name_cache_create("mq queue cache", sizeof(MqQueue));
	entry = hash_search(mq_queue_cache, key, HASH_ENTER, &found);
	memcpy(entry, &loaded, sizeof(MqQueue));
	memcpy(entry->name, key, NAMEDATALEN);
	return entry;
}
