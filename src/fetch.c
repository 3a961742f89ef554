/*-------------------------------------------------------------------------
 *
 * fetch.c
 *	  The consumer side of topics in C: mq.fetch (a group's read) and
 *	  mq.commit (a group's committed offset).
 *
 * A topic's records live in its own partition of mq.topic_record
 * (mq.topic_record_<topic_id>, split in segments).  Planning a query on
 * the top-level table costs a millisecond per call (every topic's segments
 * are considered, then pruned), more than reading 500 records; a generic
 * plan on it would lock every segment of every topic at each execution.
 * So each backend keeps one saved generic plan per topic, on the topic's
 * own table: it touches only that topic's few segments and is re-planned
 * by the plan cache when segments come and go.
 *
 * Committed offsets are fenced.  Each transaction remembers, per (group,
 * partition), the first offset it fetched (the fence) and the offset it
 * last committed itself.  A commit (mq.commit, or fetch's auto_commit)
 * moves the offset only if it is still at or below the fence, or is the
 * transaction's own, and never backwards: a concurrent transaction that
 * committed past any record this one fetched makes its commit fail with
 * 40001, so two transactions never both commit the same records (and
 * their effects, in the documented exactly-once pattern).  Only seek moves
 * an offset back.
 *
 * A long-polling fetch of a member writes nothing while it waits: it
 * reads its share of the partitions as if it had joined, and joins (the
 * heartbeat and any rebalance, mq._assign) once records came or the wait
 * is over.  While it waits it holds a lock on its member tag
 * (MQ_LOCK_GROUP_MEMBER), which mq._member_waiting sees: a waiting member
 * is live whatever its last heartbeat.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(mq_fetch);
PG_FUNCTION_INFO_V1(mq_commit);
PG_FUNCTION_INFO_V1(mq_member_waiting);

/*
 * $1 topic name, $2 group name, $3 partition: the group, its topic's
 * partition count, the partition's end offset (NULL if there is no such
 * partition) and the group's committed offset of it
 */
static MqStmt mq_stmt_commit_lookup = {
	"SELECT g.group_id, t.partitions, p.next_offset, o.committed_offset"
	"  FROM mq.consumer_group g JOIN mq.topic t ON t.topic_id OPERATOR(pg_catalog.=) g.topic_id"
	"  LEFT JOIN mq.topic_partition p"
	"    ON p.topic_id OPERATOR(pg_catalog.=) t.topic_id AND p.partition OPERATOR(pg_catalog.=) $3"
	"  LEFT JOIN mq.group_offset o"
	"    ON o.group_id OPERATOR(pg_catalog.=) g.group_id"
	"   AND o.partition OPERATOR(pg_catalog.=) $3"
	" WHERE t.topic_name OPERATOR(pg_catalog.=) $1"
	"   AND g.group_name OPERATOR(pg_catalog.=) $2",
	3, {TEXTOID, TEXTOID, INT4OID}
};

/*
 * The fence of a commit, as SQL: the committed offset does not move
 * backwards ($n the new offset), and is still at or below the fence $f
 * (NULL: none) or is this transaction's own $o (NULL: none).
 */
#define MQ_COMMIT_FENCE(col, n, f, o) \
	" AND " col " OPERATOR(pg_catalog.<=) " n \
	" AND (" f " IS NULL OR " col " OPERATOR(pg_catalog.<=) " f \
	"      OR " col " OPERATOR(pg_catalog.=) " o ")"

/*
 * $1 topic name, $2 group name, $3 partition, $4 next offset, $5 fence,
 * $6 own offset: commit when the group and partition exist, the offset is
 * within the partition and the fence holds; no row updated means one of
 * them is wrong
 */
static MqStmt mq_stmt_commit_fast = {
	"UPDATE mq.group_offset o"
	"   SET committed_offset = $4, committed_at = pg_catalog.clock_timestamp()"
	"  FROM mq.consumer_group g JOIN mq.topic t ON t.topic_id OPERATOR(pg_catalog.=) g.topic_id"
	"  JOIN mq.topic_partition p"
	"    ON p.topic_id OPERATOR(pg_catalog.=) t.topic_id AND p.partition OPERATOR(pg_catalog.=) $3"
	" WHERE t.topic_name OPERATOR(pg_catalog.=) $1"
	"   AND g.group_name OPERATOR(pg_catalog.=) $2"
	"   AND o.group_id OPERATOR(pg_catalog.=) g.group_id"
	"   AND o.partition OPERATOR(pg_catalog.=) $3"
	"   AND $4 OPERATOR(pg_catalog.>=) 0"
	"   AND $4 OPERATOR(pg_catalog.<=) p.next_offset"
	MQ_COMMIT_FENCE("o.committed_offset", "$4", "$5", "$6")
	" RETURNING g.group_id",
	6, {TEXTOID, TEXTOID, INT4OID, INT8OID, INT8OID, INT8OID}
};

/* $1 group id, $2 member, $3 partitions, $4 partition: does member hold it? */
static MqStmt mq_stmt_commit_holds = {
	"SELECT $4 OPERATOR(pg_catalog.=) ANY (mq._assign(g, $2, $3, false))"
	"  FROM mq.consumer_group g WHERE g.group_id OPERATOR(pg_catalog.=) $1",
	4, {INT4OID, TEXTOID, INT4OID, INT4OID}
};

/* $1 group id, $2 partition, $3 the next offset to read, $4 fence, $5 own */
static MqStmt mq_stmt_commit_update = {
	"UPDATE mq.group_offset"
	"   SET committed_offset = $3, committed_at = pg_catalog.clock_timestamp()"
	" WHERE group_id OPERATOR(pg_catalog.=) $1"
	"   AND partition OPERATOR(pg_catalog.=) $2"
	MQ_COMMIT_FENCE("committed_offset", "$3", "$4", "$5"),
	5, {INT4OID, INT4OID, INT8OID, INT8OID, INT8OID}
};

/* $1 topic name, $2 group name: the group, its topic and partition count */
static MqStmt mq_stmt_group_lookup = {
	"SELECT g.group_id, g.topic_id, t.partitions"
	"  FROM mq.consumer_group g JOIN mq.topic t ON t.topic_id OPERATOR(pg_catalog.=) g.topic_id"
	" WHERE t.topic_name OPERATOR(pg_catalog.=) $1"
	"   AND g.group_name OPERATOR(pg_catalog.=) $2",
	2, {TEXTOID, TEXTOID}
};

/* $1 topic name, $2 group name: raises the right error for a missing group */
static MqStmt mq_stmt_group_error = {
	"SELECT mq._group($1, $2)", 2, {TEXTOID, TEXTOID}
};

/* $1 group id, $2 member, $3 partitions: the partitions member holds */
static MqStmt mq_stmt_assign = {
	"SELECT mq._assign(g, $2, $3) FROM mq.consumer_group g"
	" WHERE g.group_id OPERATOR(pg_catalog.=) $1",
	3, {INT4OID, TEXTOID, INT4OID}
};

/*
 * $1 group id, $2 member, $3 partitions: the partitions member would hold
 * if it joined now; writes nothing
 */
static MqStmt mq_stmt_assign_peek = {
	"SELECT mq._assign_peek(g, $2, $3) FROM mq.consumer_group g"
	" WHERE g.group_id OPERATOR(pg_catalog.=) $1",
	3, {INT4OID, TEXTOID, INT4OID}
};

/*
 * What this transaction fetched and committed, per (group, partition): see
 * the file header.  NULL outside a transaction that used it.
 */
typedef struct MqFenceKey
{
	char		topic[NAMEDATALEN];	/* NUL-padded names, as the caller gave them */
	char		group[NAMEDATALEN];
	int32		partition;
} MqFenceKey;

typedef struct MqFence
{
	MqFenceKey	key;
	int64		fence;			/* first offset fetched; -1: none */
	int64		own;			/* offset committed by this transaction; -1 */
	int			own_level;		/* nest level of that commit */
} MqFence;

static HTAB *mq_fences = NULL;
static bool mq_fence_callbacks = false;

static void mq_group_not_found(FunctionCallInfo fcinfo);

/*
 * mq_fence_xact_callback
 *		Forget the fences when the transaction ends (their memory goes with
 *		the transaction's).
 */
static void
mq_fence_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT)
		mq_fences = NULL;
}

/*
 * mq_fence_subxact_callback
 *		A subtransaction that aborts takes its commits along: they are no
 *		longer this transaction's own.
 */
static void
mq_fence_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	HASH_SEQ_STATUS status;
	MqFence    *f;
	int			level;

	if (mq_fences == NULL)
		return;
	level = GetCurrentTransactionNestLevel();
	hash_seq_init(&status, mq_fences);
	while ((f = hash_seq_search(&status)) != NULL)
	{
		if (f->own < 0 || f->own_level < level)
			continue;
		if (event == SUBXACT_EVENT_ABORT_SUB)
			f->own = -1;
		else if (event == SUBXACT_EVENT_COMMIT_SUB)
			f->own_level = level - 1;
	}
}

/*
 * mq_fence_get
 *		This transaction's fence entry of partition of group (of topic);
 *		with create, a new empty one if there is none, else NULL.  Names
 *		longer than any valid one have none.
 */
static MqFence *
mq_fence_get(text *topic, text *group, int32 partition, bool create)
{
	MqFenceKey	key;
	MqFence    *f;
	bool		found;

	if (VARSIZE_ANY_EXHDR(topic) > MQ_MAX_NAME_LEN ||
		VARSIZE_ANY_EXHDR(group) > MQ_MAX_NAME_LEN)
		return NULL;
	if (mq_fences == NULL)
	{
		if (!create)
			return NULL;
		if (!mq_fence_callbacks)
		{
			RegisterXactCallback(mq_fence_xact_callback, NULL);
			RegisterSubXactCallback(mq_fence_subxact_callback, NULL);
			mq_fence_callbacks = true;
		}
		mq_fences = mq_hash_create("mq offset fences", sizeof(MqFenceKey),
								   sizeof(MqFence), 16, TopTransactionContext);
	}
	memset(&key, 0, sizeof(key));
	memcpy(key.topic, VARDATA_ANY(topic), VARSIZE_ANY_EXHDR(topic));
	memcpy(key.group, VARDATA_ANY(group), VARSIZE_ANY_EXHDR(group));
	key.partition = partition;
	f = hash_search(mq_fences, &key, create ? HASH_ENTER : HASH_FIND, &found);
	if (f != NULL && !found)
	{
		f->fence = -1;
		f->own = -1;
		f->own_level = 0;
	}
	return f;
}

/*
 * mq_fence_fetched
 *		This transaction fetched partition from offset first on.
 */
static void
mq_fence_fetched(text *topic, text *group, int32 partition, int64 first)
{
	MqFence    *f = mq_fence_get(topic, group, partition, true);

	if (f != NULL && (f->fence < 0 || first < f->fence))
		f->fence = first;
}

/*
 * mq_fence_committed
 *		This transaction committed partition's offset to next_offset.
 */
static void
mq_fence_committed(text *topic, text *group, int32 partition, int64 next_offset)
{
	MqFence    *f = mq_fence_get(topic, group, partition, true);

	if (f == NULL)
		return;
	f->own = next_offset;
	f->own_level = GetCurrentTransactionNestLevel();
}

/*
 * mq_fence_args
 *		Set values/nulls[0] to the fence and [1] to the own offset of
 *		partition of group (of topic) for MQ_COMMIT_FENCE (NULL for none).
 */
static void
mq_fence_args(text *topic, text *group, int32 partition, Datum *values,
			  char *nulls)
{
	MqFence    *f = mq_fence_get(topic, group, partition, false);

	values[0] = Int64GetDatum(f != NULL ? f->fence : 0);
	nulls[0] = (f == NULL || f->fence < 0) ? 'n' : ' ';
	values[1] = Int64GetDatum(f != NULL ? f->own : 0);
	nulls[1] = (f == NULL || f->own < 0) ? 'n' : ' ';
}

/*
 * mq_fence_error
 *		The commit of partition to next_offset was fenced off: another
 *		transaction committed past records this one fetched, or past
 *		next_offset.
 */
static void
mq_fence_error(const char *group_name, int32 partition, int64 next_offset,
			   bool have_committed, int64 committed)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not commit offset " INT64_FORMAT " of partition %d of group \"%s\": another transaction committed its records",
					next_offset, partition, group_name),
			 have_committed ?
			 errdetail("The committed offset is " INT64_FORMAT ", past records this transaction fetched or past the offset given.",
					   committed) : 0,
			 errhint("Roll back (undoing what was done with the records) and fetch again.")));
}

/*
 * mq_member_lock_tag
 *		The lock tag a long-polling fetch of member of group_id holds.
 */
static void
mq_member_lock_tag(LOCKTAG *tag, int32 group_id, text *member)
{
	uint32		h = hash_bytes((const unsigned char *) VARDATA_ANY(member),
							   VARSIZE_ANY_EXHDR(member));

	h = hash_combine(h, (uint32) group_id);
	MQ_SET_LOCKTAG(*tag, MQ_LOCK_GROUP_MEMBER, h);
}

/*
 * mq_member_waiting
 *		mq._member_waiting(group_id, member) RETURNS boolean: is a fetch of
 *		member waiting now (so that the member is live)?  Waiters hold
 *		RowExclusiveLock on the member's tag; ShareLock conflicts with it
 *		and not with other askers.
 */
Datum
mq_member_waiting(PG_FUNCTION_ARGS)
{
	LOCKTAG		tag;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	mq_member_lock_tag(&tag, PG_GETARG_INT32(0), PG_GETARG_TEXT_PP(1));
	if (LockAcquire(&tag, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		PG_RETURN_BOOL(true);
	LockRelease(&tag, ShareLock, false);
	PG_RETURN_BOOL(false);
}

/* topic id -> saved plan of the read; dropped when mq's catalog changes */
typedef struct MqFetchPlan
{
	int32		topic_id;		/* hash key */
	SPIPlanPtr	plan;
} MqFetchPlan;

static HTAB *mq_fetch_plans = NULL;
static uint64 mq_fetch_plans_generation = 0;

/*
 * mq_fetch_plan
 *		The saved read plan of topic_id: $1 group id, $2 partitions held,
 *		$3 records per partition, $4 records in all.  Up to $3 records from
 *		each held partition from the committed offset on, round-robin over
 *		the partitions and in offset order within each.  Inside SPI.
 */
static SPIPlanPtr
mq_fetch_plan(int32 topic_id)
{
	MqFetchPlan *entry;
	bool		found;

	if (mq_fetch_plans != NULL && mq_fetch_plans_generation != mq_catalog_generation)
	{
		HASH_SEQ_STATUS status;

		hash_seq_init(&status, mq_fetch_plans);
		while ((entry = hash_seq_search(&status)) != NULL)
			SPI_freeplan(entry->plan);
		hash_destroy(mq_fetch_plans);
		mq_fetch_plans = NULL;
	}
	if (mq_fetch_plans == NULL)
	{
		mq_fetch_plans = mq_hash_create("mq fetch plans", sizeof(int32),
										sizeof(MqFetchPlan), 16,
										TopMemoryContext);
		mq_fetch_plans_generation = mq_catalog_generation;
	}
	entry = hash_search(mq_fetch_plans, &topic_id, HASH_FIND, NULL);
	if (entry == NULL)
	{
		StringInfoData sql;
		Oid			argtypes[4] = {INT4OID, INT4ARRAYOID, INT4OID, INT4OID};
		SPIPlanPtr	plan;

		initStringInfo(&sql);
		appendStringInfo(&sql,
						 "SELECT r.partition, r.\"offset\", r.key, r.payload, r.headers,"
						 "       r.message_id, r.published_at"
						 "  FROM mq.group_offset o"
						 "  CROSS JOIN LATERAL ("
						 "      SELECT x.* FROM mq.topic_record_%d x"
						 "       WHERE x.topic_id OPERATOR(pg_catalog.=) %d"
						 "         AND x.partition OPERATOR(pg_catalog.=) o.partition"
						 "         AND x.\"offset\" OPERATOR(pg_catalog.>=) o.committed_offset"
						 "       ORDER BY x.\"offset\" LIMIT $3) r"
						 " WHERE o.group_id OPERATOR(pg_catalog.=) $1"
						 "   AND o.partition OPERATOR(pg_catalog.=) ANY ($2)"
						 " ORDER BY r.\"offset\" OPERATOR(pg_catalog.-) o.committed_offset,"
						 "          r.partition"
						 " LIMIT $4",
						 topic_id, topic_id);
		plan = SPI_prepare_cursor(sql.data, 4, argtypes, CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "mq: SPI_prepare failed for \"%s\": %s",
				 sql.data, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "mq: SPI_keepplan failed");
		pfree(sql.data);
		entry = hash_search(mq_fetch_plans, &topic_id, HASH_ENTER, &found);
		entry->plan = plan;
	}
	return entry->plan;
}

/*
 * mq_fetch_can_peek
 *		Does the installed SQL have mq._assign_peek?  A database still at
 *		mq 0.1.0 has not: there a waiting fetch joins before it waits, as
 *		0.1.0 did.  A positive answer is kept until mq's catalog changes.
 */
static bool
mq_fetch_can_peek(void)
{
	static uint64 generation = 0;

	if (generation != mq_catalog_generation)
	{
		List	   *name = list_make2(makeString("mq"), makeString("_assign_peek"));

		if (!OidIsValid(LookupFuncName(name, -1, NULL, true)))
			return false;
		generation = mq_catalog_generation;
	}
	return true;
}

/*
 * mq_fetch_held
 *		The partitions member holds in group_id (mq._assign: joins, writes
 *		the heartbeat), or with peek the ones it would hold if it joined now
 *		(mq._assign_peek: writes nothing).  Inside SPI; the array is
 *		allocated in the caller's memory context.
 */
static ArrayType *
mq_fetch_held(int32 group_id, Datum member, int32 partitions, bool peek)
{
	Datum		values[3];
	Datum		d;
	bool		isnull;

	values[0] = Int32GetDatum(group_id);
	values[1] = member;
	values[2] = Int32GetDatum(partitions);
	mq_stmt_exec(peek ? &mq_stmt_assign_peek : &mq_stmt_assign, values, NULL, 1);
	if (SPI_processed == 0)
		return construct_empty_array(INT4OID);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return construct_empty_array(INT4OID);
	/* copy out of SPI's tuple table, which the next query frees */
	return DatumGetArrayTypePCopy(d);
}

/*
 * mq_fetch_read
 *		One read of the held partitions with plan; the rows are in
 *		SPI_tuptable.  Returns their number.
 */
static uint64
mq_fetch_read(SPIPlanPtr plan, int32 group_id, ArrayType *held,
			  int32 max_messages)
{
	Datum		values[4];
	int			nheld = ArrayGetNItems(ARR_NDIM(held), ARR_DIMS(held));
	int			rc;

	values[0] = Int32GetDatum(group_id);
	values[1] = PointerGetDatum(held);
	/* read about an equal share from each partition held */
	values[2] = Int32GetDatum(max_messages / Max(nheld, 1) +
							  (max_messages % Max(nheld, 1) != 0));
	values[3] = Int32GetDatum(max_messages);
	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "mq: SPI_execute_plan failed: %s",
			 SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * mq_fetch_same
 *		Do two arrays of held partitions hold the same ones?
 */
static bool
mq_fetch_same(ArrayType *a, ArrayType *b)
{
	int			na = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	int			nb = ArrayGetNItems(ARR_NDIM(b), ARR_DIMS(b));

	/* int4 arrays without NULLs, as mq._share makes them */
	if (na != nb)
		return false;
	if (na == 0)
		return true;
	if (ARR_HASNULL(a) || ARR_HASNULL(b))
		return false;
	return memcmp(ARR_DATA_PTR(a), ARR_DATA_PTR(b), sizeof(int32) * na) == 0;
}

/*
 * mq_fetch
 *		mq.fetch(topic_name, group_name, max_messages, member, wait,
 *		auto_commit) RETURNS TABLE (partition, offset, key, payload, headers,
 *		message_id, published_at): records from the committed offsets of the
 *		partitions the member holds (all of them without a member), waiting
 *		up to wait for some to arrive.  Fetching again without committing
 *		returns the same records; with auto_commit, the fetch also commits
 *		past what it returns, in the caller's transaction, fenced like
 *		mq.commit (40001 if another transaction committed past them).
 */
Datum
mq_fetch(PG_FUNCTION_ARGS)
{
	int32		max_messages;
	Interval	zero = {0};
	Interval   *wait;
	MqWaiter	waiter;
	MqWaiter   *w;
	Tuplestorestate *store;
	TupleDesc	desc;
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int32		group_id;
	int32		topic_id;
	int32		locked_topic = 0;
	int32		partitions;
	bool		has_member = !PG_ARGISNULL(3);
	bool		peek = false;
	bool		member_locked = false;
	ArrayType  *held;
	SPIPlanPtr	plan;
	SPITupleTable *rows;
	uint64		nrows;
	uint64		i;
	int64	   *first;
	int64	   *next;
	int32		p;
	int			guc_level;

	if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_messages must be at least 1, got %s",
						PG_ARGISNULL(2) ? "NULL" : psprintf("%d", PG_GETARG_INT32(2)))));
	max_messages = PG_GETARG_INT32(2);
	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("wait must not be NULL"),
				 errhint("Pass '0' not to wait.")));
	wait = mq_arg_interval(fcinfo, 4, "wait", &zero);
	mq_acl_check_arg(fcinfo, 0, MQ_PRIV_CONSUME);
	w = mq_wait_start(&waiter, "mq.fetch", wait);

	store = mq_srf_init(fcinfo, &desc);
	SPI_connect();
	guc_level = mq_plan_guard();

	values[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	if (!PG_ARGISNULL(0) && !PG_ARGISNULL(1))
		mq_stmt_exec(&mq_stmt_group_lookup, values, NULL, 1);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || SPI_processed == 0)
		mq_group_not_found(fcinfo);
	topic_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 2, &isnull));

	/*
	 * The topic's lock (doc/design.md, "Lock protocol"), taken by the
	 * privilege check's look-up: a drop waits for this fetch, and this
	 * fetch waited for a drop in progress, after which the look-up saw the
	 * latest committed state.  The transaction's snapshot (REPEATABLE READ)
	 * may predate a drop or re-creation: then look again at the latest
	 * state.
	 */
	if (mq_dest_lookup(VARDATA_ANY(PG_GETARG_TEXT_PP(0)),
					   VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(0)),
					   &locked_topic) != MQ_KIND_TOPIC ||
		locked_topic != topic_id)
	{
		SPI_freetuptable(SPI_tuptable);
		mq_stmt_exec_latest(&mq_stmt_group_lookup, values, NULL, 1);
		if (SPI_processed == 0 ||
			DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 2, &isnull)) != locked_topic)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("consumer group \"%s\" of topic \"%s\" does not exist",
							text_to_cstring(PG_GETARG_TEXT_PP(1)),
							text_to_cstring(PG_GETARG_TEXT_PP(0))),
					 errdetail("The topic was dropped after this transaction's snapshot was taken.")));
		topic_id = locked_topic;
	}
	group_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	partitions = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 3, &isnull));

	/*
	 * The partitions held: all of them, or the member's share.  A fetch
	 * that may wait only peeks at its share, so as to write nothing while
	 * it waits; it joins once it is done waiting.
	 */
	if (!has_member)
	{
		Datum	   *elems = palloc(sizeof(Datum) * partitions);

		for (i = 0; i < (uint64) partitions; i++)
			elems[i] = Int32GetDatum((int32) i);
		held = mq_int4_array(elems, partitions);
	}
	else
	{
		peek = (w != NULL && mq_fetch_can_peek());
		held = mq_fetch_held(group_id, PG_GETARG_DATUM(3), partitions, peek);
	}

	plan = mq_fetch_plan(topic_id);
	for (;;)
	{
		if (w != NULL)
			mq_wait_arm(w, MQ_WAIT_TOPIC, topic_id);
		nrows = mq_fetch_read(plan, group_id, held, max_messages);
		if (nrows > 0 || w == NULL || mq_wait_over(w))
			break;
		SPI_freetuptable(SPI_tuptable);
		if (peek && !member_locked)
		{
			LOCKTAG		tag;

			/* live while waiting: see mq._member_waiting */
			mq_member_lock_tag(&tag, group_id, PG_GETARG_TEXT_PP(3));
			(void) LockAcquire(&tag, RowExclusiveLock, false, false);
			member_locked = true;
		}
		mq_wait_sleep(w, DT_NOEND);
		/* members may have come or gone meanwhile */
		if (peek)
			held = mq_fetch_held(group_id, PG_GETARG_DATUM(3), partitions, peek);
	}

	/* done waiting: join, and read again if that changed the share */
	if (peek)
	{
		ArrayType  *joined;
		MemoryContext oldcxt;

		rows = SPI_tuptable;
		/* keep the rows read while the join runs its own queries */
		oldcxt = MemoryContextSwitchTo(TopTransactionContext);
		MemoryContextSwitchTo(oldcxt);
		joined = mq_fetch_held(group_id, PG_GETARG_DATUM(3), partitions, false);
		if (!mq_fetch_same(joined, held))
		{
			SPI_freetuptable(rows);
			held = joined;
			nrows = mq_fetch_read(plan, group_id, held, max_messages);
		}
		else
			SPI_tuptable = rows;
	}

	rows = SPI_tuptable;
	for (i = 0; i < nrows; i++)
		tuplestore_puttuple(store, rows->vals[i]);

	/* the first and the last offset returned of each partition */
	first = palloc(sizeof(int64) * Max(partitions, 1));
	next = palloc(sizeof(int64) * Max(partitions, 1));
	for (p = 0; p < partitions; p++)
		first[p] = next[p] = -1;
	for (i = 0; i < nrows; i++)
	{
		int64		off;

		p = DatumGetInt32(SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull));
		off = DatumGetInt64(SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull));
		if (p < 0 || p >= partitions)
			continue;
		if (first[p] < 0 || off < first[p])
			first[p] = off;
		if (off + 1 > next[p])
			next[p] = off + 1;
	}
	for (p = 0; p < partitions; p++)
		if (first[p] >= 0)
			mq_fence_fetched(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), p, first[p]);

	/* auto_commit: each returned partition's committed offset moves past it */
	if (!PG_ARGISNULL(5) && PG_GETARG_BOOL(5) && nrows > 0)
	{
		for (p = 0; p < partitions; p++)
		{
			if (next[p] < 0)
				continue;
			values[0] = Int32GetDatum(group_id);
			values[1] = Int32GetDatum(p);
			values[2] = Int64GetDatum(next[p]);
			mq_fence_args(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), p,
						  values + 3, nulls + 3);
			mq_stmt_exec(&mq_stmt_commit_update, values, nulls, 0);
			if (SPI_processed == 0)
				mq_fence_error(text_to_cstring(PG_GETARG_TEXT_PP(1)), p, next[p],
							   false, 0);
			mq_fence_committed(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), p, next[p]);
		}
	}
	mq_plan_unguard(guc_level);
	SPI_finish();
	return (Datum) 0;
}

/*
 * mq_group_not_found
 *		Raise the error for a (topic, group) pair that the lookup did not
 *		find: mq._group knows which one is missing.  Inside SPI.
 */
static void
mq_group_not_found(FunctionCallInfo fcinfo)
{
	Datum		values[2];
	char		nulls[2];

	values[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[0] = PG_ARGISNULL(0) ? 'n' : ' ';
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	mq_stmt_exec(&mq_stmt_group_error, values, nulls, 1);
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("consumer group \"%s\" of topic \"%s\" does not exist",
					text_to_cstring(PG_GETARG_TEXT_PP(1)),
					text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}

/*
 * mq_commit
 *		mq.commit(topic_name, group_name, partition, next_offset, member)
 *		RETURNS void: set the group's committed offset of partition (the
 *		next offset to read), in the caller's transaction.  With member, the
 *		commit is refused unless the member holds the partition now.  The
 *		commit is fenced (see the file header): 40001 if next_offset is
 *		behind the committed offset, or if another transaction committed
 *		past records this one fetched.
 */
Datum
mq_commit(PG_FUNCTION_ARGS)
{
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	bool		end_null;
	bool		committed_null;
	int32		group_id;
	int32		partitions;
	int32		partition;
	int64		next_offset;
	int64		end_offset;
	int64		committed;
	int			guc_level;

	mq_check_writable("mq.commit()");
	mq_acl_check_arg(fcinfo, 0, MQ_PRIV_CONSUME);
	SPI_connect();
	guc_level = mq_plan_guard();

	/* the common case in one statement: no member, every argument valid */
	if (!PG_ARGISNULL(0) && !PG_ARGISNULL(1) && !PG_ARGISNULL(2) &&
		!PG_ARGISNULL(3) && PG_ARGISNULL(4))
	{
		values[0] = PG_GETARG_DATUM(0);
		values[1] = PG_GETARG_DATUM(1);
		values[2] = PG_GETARG_DATUM(2);
		values[3] = PG_GETARG_DATUM(3);
		mq_fence_args(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1),
					  PG_GETARG_INT32(2), values + 4, nulls + 4);
		mq_stmt_exec(&mq_stmt_commit_fast, values, nulls, 0);
		if (SPI_processed > 0)
		{
			mq_fence_committed(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1),
							   PG_GETARG_INT32(2), PG_GETARG_INT64(3));
			mq_plan_unguard(guc_level);
			SPI_finish();
			PG_RETURN_VOID();
		}
		/* nothing moved: find out why below */
	}

	if (!PG_ARGISNULL(0) && !PG_ARGISNULL(1))
	{
		values[0] = PG_GETARG_DATUM(0);
		values[1] = PG_GETARG_DATUM(1);
		values[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
		nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';
		mq_stmt_exec(&mq_stmt_commit_lookup, values, nulls, 1);
	}
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || SPI_processed == 0)
		mq_group_not_found(fcinfo);
	group_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	partitions = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 2, &isnull));
	end_offset = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 3, &end_null));
	committed = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 4, &committed_null));

	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("partition and next_offset must not be NULL")));
	partition = PG_GETARG_INT32(2);
	next_offset = PG_GETARG_INT64(3);
	if (partition < 0 || partition >= partitions || end_null || committed_null)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("topic \"%s\" has no partition %d",
						text_to_cstring(PG_GETARG_TEXT_PP(0)), partition),
				 errhint("Partitions are 0 to %d.", partitions - 1)));
	if (next_offset < 0 || next_offset > end_offset)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("offset " INT64_FORMAT " is outside partition %d of topic \"%s\" (0 to " INT64_FORMAT ")",
						next_offset, partition,
						text_to_cstring(PG_GETARG_TEXT_PP(0)), end_offset)));

	if (!PG_ARGISNULL(4))
	{
		values[0] = Int32GetDatum(group_id);
		values[1] = PG_GETARG_DATUM(4);
		values[2] = Int32GetDatum(partitions);
		values[3] = Int32GetDatum(partition);
		mq_stmt_exec(&mq_stmt_commit_holds, values, NULL, 1);
		if (SPI_processed == 0 ||
			!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										SPI_tuptable->tupdesc, 1, &isnull)) ||
			isnull)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("member \"%s\" does not hold partition %d of group \"%s\"",
							text_to_cstring(PG_GETARG_TEXT_PP(4)), partition,
							text_to_cstring(PG_GETARG_TEXT_PP(1))),
					 errdetail("The partition moved to another member (its session lapsed or members changed)."),
					 errhint("Fetch again to learn the partitions this member holds.")));
	}

	values[0] = Int32GetDatum(group_id);
	values[1] = Int32GetDatum(partition);
	values[2] = Int64GetDatum(next_offset);
	nulls[0] = nulls[1] = nulls[2] = ' ';
	mq_fence_args(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), partition,
				  values + 3, nulls + 3);
	mq_stmt_exec(&mq_stmt_commit_update, values, nulls, 0);
	if (SPI_processed == 0)
		mq_fence_error(text_to_cstring(PG_GETARG_TEXT_PP(1)), partition,
					   next_offset, true, committed);
	mq_fence_committed(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), partition,
					   next_offset);
	mq_plan_unguard(guc_level);
	SPI_finish();
	PG_RETURN_VOID();
}
