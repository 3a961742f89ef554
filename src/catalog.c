/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Queue names, the per-backend caches of queues and destinations, and
 *	  the lock protocol of mq's objects (queues, topics, exchanges).
 *
 * The hot paths look a queue up by name on every call.  Going to mq.queue
 * each time would cost an index scan per message, so each backend keeps a
 * hash table of the queues it has used.  The whole table is dropped when
 * a relcache invalidation for mq.queue arrives: mq's administrative
 * functions send one (mq._invalidate_queue_cache) whenever they change a
 * row, and it is delivered at commit to every backend, or undone locally
 * at abort.
 *
 * Lock protocol.  Whoever uses an object holds its heavyweight lock
 * (MQ_LOCK_QUEUE / _TOPIC / _EXCHANGE and the object's id) in
 * MQ_LOCKMODE_USE until the end of the transaction; drop, purge and alter
 * take MQ_LOCKMODE_CHANGE.  An object therefore cannot change or vanish
 * under a transaction that uses it, and a change waits for its users to
 * end.  A change commits (sending its invalidation) before it releases its
 * lock, so a user that has just acquired the lock processes pending
 * invalidations and, if the cache moved, reads the object again with the
 * latest snapshot (never the transaction's: under REPEATABLE READ that
 * would resurrect a dropped object).  The second use of an object in a
 * transaction finds the lock in the local lock table and costs a hash
 * probe.  Creation serializes on MQ_LOCK_NAME of the name, so the one
 * namespace of queues, topics and exchanges holds each name once.  The
 * changes of the exchange graph that check the depth of routes serialize
 * on MQ_LOCK_ROUTES (mq._lock_routes).
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "miscadmin.h"
#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(mq_check_name);
PG_FUNCTION_INFO_V1(mq_invalidate_queue_cache);
PG_FUNCTION_INFO_V1(mq_sql_lock);
PG_FUNCTION_INFO_V1(mq_sql_lock_named);
PG_FUNCTION_INFO_V1(mq_sql_lock_name);
PG_FUNCTION_INFO_V1(mq_sql_lock_routes);

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

static const MqQueue *mq_queue_cached(text *queue_name);

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
	mq_stmt_exec_latest(&mq_stmt_queue_lookup, values, NULL, 1);
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
 * mq_dest_cached
 *		The kind of the queue, topic or exchange called name ('q', 't', 'x'),
 *		or 0 if there is none; its id in *id.  Cached like queues (any change
 *		of queues, topics or exchanges invalidates mq.queue's relcache
 *		entry); a miss reads the latest committed state.
 */
static char
mq_dest_cached(const char *name, int len, int32 *id)
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
	mq_stmt_exec_latest(&mq_stmt_dest_lookup, values, NULL, 1);
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
 * mq_kind_lock_class
 *		The lock class of objects of kind 'q', 't' or 'x'.
 */
static MqLockClass
mq_kind_lock_class(char kind)
{
	switch (kind)
	{
		case 'q':
			return MQ_LOCK_QUEUE;
		case 't':
			return MQ_LOCK_TOPIC;
		case 'x':
			return MQ_LOCK_EXCHANGE;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown kind of object \"%c\"", kind)));
	return MQ_LOCK_QUEUE;		/* keep the compiler quiet */
}

/*
 * mq_lock_object
 *		Take mq's lock on an object in mode until the end of the transaction.
 *		If this transaction did not hold it in that mode yet, process the
 *		invalidations that changes committed before we got it have sent, and
 *		return true: the caller's cached copy may be stale.
 */
bool
mq_lock_object(MqLockClass cls, int32 id, LOCKMODE mode)
{
	LOCKTAG		tag;

	MQ_SET_LOCKTAG(tag, cls, id);
	if (LockAcquire(&tag, mode, false, false) != LOCKACQUIRE_OK)
		return false;
	AcceptInvalidationMessages();
	return true;
}

/*
 * mq_dest_lookup
 *		The kind of the queue, topic or exchange called name ('q', 't', 'x'),
 *		or 0 if there is none; its id in *id.  The object found is locked in
 *		MQ_LOCKMODE_USE until the end of the transaction, so it still exists
 *		when the caller commits.
 */
char
mq_dest_lookup(const char *name, int len, int32 *id)
{
	for (;;)
	{
		uint64		generation;
		char		kind = mq_dest_cached(name, len, id);

		if (kind == 0)
			return 0;
		generation = mq_catalog_generation;
		if (!mq_lock_object(mq_kind_lock_class(kind), *id, MQ_LOCKMODE_USE) ||
			generation == mq_catalog_generation)
			return kind;
		/* a change committed before we got the lock: look again */
	}
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
 *		The queue called queue_name, locked in MQ_LOCKMODE_USE until the end
 *		of the transaction; an error if it does not exist.
 *
 * The result is valid until the next invalidation, i.e. for the rest of the
 * calling function as long as it does not process invalidations in between;
 * callers copy what they need.
 */
const MqQueue *
mq_queue_get(text *queue_name)
{
	for (;;)
	{
		const MqQueue *q = mq_queue_cached(queue_name);
		uint64		generation = mq_catalog_generation;

		if (!mq_lock_object(MQ_LOCK_QUEUE, q->queue_id, MQ_LOCKMODE_USE) ||
			generation == mq_catalog_generation)
			return q;
		/* a change committed before we got the lock: look again */
	}
}

/*
 * mq_queue_cached
 *		The cached queue called queue_name; an error if it does not exist.
 *		A cache miss reads the latest committed row of mq.queue.
 */
static const MqQueue *
mq_queue_cached(text *queue_name)
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

/* $1 id: does the object exist (latest committed state)? */
static MqStmt mq_stmt_queue_exists = {
	"SELECT 1 FROM mq.queue WHERE queue_id OPERATOR(pg_catalog.=) $1",
	1, {INT4OID}
};
static MqStmt mq_stmt_topic_exists = {
	"SELECT 1 FROM mq.topic WHERE topic_id OPERATOR(pg_catalog.=) $1",
	1, {INT4OID}
};
static MqStmt mq_stmt_exchange_exists = {
	"SELECT 1 FROM mq.exchange WHERE exchange_id OPERATOR(pg_catalog.=) $1",
	1, {INT4OID}
};

/*
 * mq_lock_sql_mode
 *		The lock mode an administrative function asks for.  A change must
 *		see every use committed before it got its lock (the messages of a
 *		send it waited for, a queue that was just pointed at the one it
 *		drops), which a transaction snapshot taken earlier does not show:
 *		changes are refused under REPEATABLE READ and SERIALIZABLE.
 */
static LOCKMODE
mq_lock_sql_mode(bool exclusive)
{
	if (!exclusive)
		return MQ_LOCKMODE_USE;
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("mq cannot drop, purge or alter a queue, topic or exchange inside a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("The change must see everything committed before it got the object's lock; the transaction's snapshot is older."),
				 errhint("Run it in a READ COMMITTED transaction.")));
	return MQ_LOCKMODE_CHANGE;
}

/*
 * mq_object_exists
 *		Does the object of kind with this id exist in the latest committed
 *		state (or in this transaction's own changes)?
 */
static bool
mq_object_exists(char kind, int32 id)
{
	Datum		values[1];
	bool		found;

	values[0] = Int32GetDatum(id);
	SPI_connect();
	mq_stmt_exec_latest(kind == 'q' ? &mq_stmt_queue_exists :
						kind == 't' ? &mq_stmt_topic_exists :
						&mq_stmt_exchange_exists, values, NULL, 1);
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

/*
 * mq_sql_lock
 *		mq._lock(kind, id, exclusive) RETURNS boolean: lock the queue ('q'),
 *		topic ('t') or exchange ('x') id until the end of the transaction,
 *		shared or exclusive; then whether it (still) exists.
 */
Datum
mq_sql_lock(PG_FUNCTION_ARGS)
{
	char		kind = PG_GETARG_CHAR(0);
	int32		id = PG_GETARG_INT32(1);
	LOCKMODE	mode = mq_lock_sql_mode(PG_GETARG_BOOL(2));

	(void) mq_lock_object(mq_kind_lock_class(kind), id, mode);
	PG_RETURN_BOOL(mq_object_exists(kind, id));
}

/*
 * mq_sql_lock_routes
 *		mq._lock_routes() RETURNS void: serialize the changes of this
 *		database's exchange graph that check the depth of routes
 *		(mq._check_route_depth) until the end of the transaction, so that
 *		two changes made at once cannot together make a route longer than
 *		each of them checked.  Like the other changes, refused under
 *		REPEATABLE READ and SERIALIZABLE, whose snapshot would not show the
 *		change committed by the transaction it waited for.
 */
Datum
mq_sql_lock_routes(PG_FUNCTION_ARGS)
{
	(void) mq_lock_object(MQ_LOCK_ROUTES, 0, mq_lock_sql_mode(true));
	PG_RETURN_VOID();
}

/*
 * mq_sql_lock_named
 *		mq._lock_named(kind, name, exclusive) RETURNS integer: the id of the
 *		object of kind called name, locked until the end of the transaction
 *		(shared or exclusive); NULL if there is none once the lock is held.
 */
Datum
mq_sql_lock_named(PG_FUNCTION_ARGS)
{
	char		kind = PG_GETARG_CHAR(0);
	text	   *name = PG_GETARG_TEXT_PP(1);
	LOCKMODE	mode = mq_lock_sql_mode(PG_GETARG_BOOL(2));
	MqLockClass cls = mq_kind_lock_class(kind);

	for (;;)
	{
		int32		id;
		char		found = mq_dest_cached(VARDATA_ANY(name),
										   VARSIZE_ANY_EXHDR(name), &id);
		uint64		generation;

		if (found != kind)
			PG_RETURN_NULL();
		generation = mq_catalog_generation;
		if (!mq_lock_object(cls, id, mode) ||
			generation == mq_catalog_generation)
			PG_RETURN_INT32(id);
	}
}

/*
 * mq_sql_lock_name
 *		mq._lock_name(name, kind) RETURNS boolean: before creating an object
 *		called name, serialize with every other creator of that name (a lock
 *		on the name's hash until the end of the transaction), then look at
 *		the latest committed state: an error (42710) if an object of another
 *		kind (or of any kind, when kind is NULL) has the name; otherwise
 *		whether an object of kind has it.
 */
Datum
mq_sql_lock_name(PG_FUNCTION_ARGS)
{
	text	   *name;
	char		kind;
	char		found;
	int32		id;
	LOCKTAG		tag;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name must not be NULL")));
	name = PG_GETARG_TEXT_PP(0);
	kind = PG_ARGISNULL(1) ? 0 : PG_GETARG_CHAR(1);
	MQ_SET_LOCKTAG(tag, MQ_LOCK_NAME,
				   hash_bytes((const unsigned char *) VARDATA_ANY(name),
							  VARSIZE_ANY_EXHDR(name)));
	if (LockAcquire(&tag, MQ_LOCKMODE_CHANGE, false, false) == LOCKACQUIRE_OK)
		AcceptInvalidationMessages();
	found = mq_dest_cached(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name), &id);
	if (found != 0 && found != kind)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("%s \"%s\" already exists",
						found == 'q' ? "a queue" : found == 't' ? "a topic" : "an exchange",
						text_to_cstring(name)),
				 errhint("Queues, topics and exchanges share one namespace.")));
	PG_RETURN_BOOL(found != 0);
}
