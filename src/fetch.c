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
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(mq_fetch);
PG_FUNCTION_INFO_V1(mq_commit);

/*
 * $1 topic name, $2 group name, $3 partition: the group, its topic's
 * partition count, and the partition's end offset (NULL if there is no
 * such partition)
 */
static MqStmt mq_stmt_commit_lookup = {
	"SELECT g.group_id, t.partitions, p.next_offset"
	"  FROM mq.consumer_group g JOIN mq.topic t ON t.topic_id = g.topic_id"
	"  LEFT JOIN mq.topic_partition p"
	"    ON p.topic_id = t.topic_id AND p.partition OPERATOR(pg_catalog.=) $3"
	" WHERE t.topic_name OPERATOR(pg_catalog.=) $1"
	"   AND g.group_name OPERATOR(pg_catalog.=) $2",
	3, {TEXTOID, TEXTOID, INT4OID}
};

/*
 * $1 topic name, $2 group name, $3 partition, $4 next offset: commit when
 * the group and partition exist and the offset is within the partition;
 * no row updated means one of them is wrong
 */
static MqStmt mq_stmt_commit_fast = {
	"UPDATE mq.group_offset o"
	"   SET committed_offset = $4, committed_at = pg_catalog.clock_timestamp()"
	"  FROM mq.consumer_group g JOIN mq.topic t ON t.topic_id = g.topic_id"
	"  JOIN mq.topic_partition p"
	"    ON p.topic_id = t.topic_id AND p.partition OPERATOR(pg_catalog.=) $3"
	" WHERE t.topic_name OPERATOR(pg_catalog.=) $1"
	"   AND g.group_name OPERATOR(pg_catalog.=) $2"
	"   AND o.group_id OPERATOR(pg_catalog.=) g.group_id"
	"   AND o.partition OPERATOR(pg_catalog.=) $3"
	"   AND $4 OPERATOR(pg_catalog.>=) 0"
	"   AND $4 OPERATOR(pg_catalog.<=) p.next_offset",
	4, {TEXTOID, TEXTOID, INT4OID, INT8OID}
};

/* $1 group id, $2 member, $3 partitions, $4 partition: does member hold it? */
static MqStmt mq_stmt_commit_holds = {
	"SELECT $4 OPERATOR(pg_catalog.=) ANY (mq._assign(g, $2, $3, false))"
	"  FROM mq.consumer_group g WHERE g.group_id OPERATOR(pg_catalog.=) $1",
	4, {INT4OID, TEXTOID, INT4OID, INT4OID}
};

/* $1 group id, $2 partition, $3 the next offset to read */
static MqStmt mq_stmt_commit_update = {
	"UPDATE mq.group_offset"
	"   SET committed_offset = $3, committed_at = pg_catalog.clock_timestamp()"
	" WHERE group_id OPERATOR(pg_catalog.=) $1"
	"   AND partition OPERATOR(pg_catalog.=) $2",
	3, {INT4OID, INT4OID, INT8OID}
};

/* $1 topic name, $2 group name: the group, its topic and partition count */
static MqStmt mq_stmt_group_lookup = {
	"SELECT g.group_id, g.topic_id, t.partitions"
	"  FROM mq.consumer_group g JOIN mq.topic t ON t.topic_id = g.topic_id"
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

static void mq_group_not_found(FunctionCallInfo fcinfo);

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
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(MqFetchPlan);
		ctl.hcxt = TopMemoryContext;
		mq_fetch_plans = hash_create("mq fetch plans", 16, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
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
 * mq_fetch
 *		mq.fetch(topic_name, group_name, max_messages, member, wait,
 *		auto_commit) RETURNS TABLE (partition, offset, key, payload, headers,
 *		message_id, published_at): records from the committed offsets of the
 *		partitions the member holds (all of them without a member), waiting
 *		up to wait for some to arrive.  Fetching again without committing
 *		returns the same records; with auto_commit, the fetch also commits
 *		past what it returns, in the caller's transaction.
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
	Datum		values[4];
	bool		isnull;
	int32		group_id;
	int32		topic_id;
	int32		partitions;
	ArrayType  *held;
	int			nheld;
	SPIPlanPtr	plan;
	SPITupleTable *rows;
	uint64		nrows;
	uint64		i;

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
	w = mq_wait_start(&waiter, "mq.fetch", wait);

	store = mq_srf_init(fcinfo, &desc);
	SPI_connect();

	values[0] = PG_ARGISNULL(0) ? (Datum) 0 : PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	if (!PG_ARGISNULL(0) && !PG_ARGISNULL(1))
		mq_stmt_exec(&mq_stmt_group_lookup, values, NULL, 1);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || SPI_processed == 0)
		mq_group_not_found(fcinfo);
	group_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	topic_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 2, &isnull));
	partitions = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 3, &isnull));

	/* the partitions held: all of them, or the member's share */
	if (PG_ARGISNULL(3))
	{
		Datum	   *elems = palloc(sizeof(Datum) * partitions);

		for (i = 0; i < (uint64) partitions; i++)
			elems[i] = Int32GetDatum((int32) i);
		held = construct_array(elems, partitions, INT4OID, 4, true, TYPALIGN_INT);
		nheld = partitions;
	}
	else
	{
		Datum		d;

		values[0] = Int32GetDatum(group_id);
		values[1] = PG_GETARG_DATUM(3);
		values[2] = Int32GetDatum(partitions);
		mq_stmt_exec(&mq_stmt_assign, values, NULL, 1);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (isnull)
		{
			held = construct_empty_array(INT4OID);
			nheld = 0;
		}
		else
		{
			/* copy out of SPI's tuple table, which the next query frees */
			held = DatumGetArrayTypePCopy(d);
			nheld = ArrayGetNItems(ARR_NDIM(held), ARR_DIMS(held));
		}
	}

	plan = mq_fetch_plan(topic_id);
	values[0] = Int32GetDatum(group_id);
	values[1] = PointerGetDatum(held);
	/* read about an equal share from each partition held */
	values[2] = Int32GetDatum(max_messages / Max(nheld, 1) +
							  (max_messages % Max(nheld, 1) != 0));
	values[3] = Int32GetDatum(max_messages);
	for (;;)
	{
		int			rc;

		if (w != NULL)
			mq_wait_arm(w, MQ_WAIT_TOPIC, topic_id);
		rc = SPI_execute_plan(plan, values, NULL, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "mq: SPI_execute_plan failed: %s",
				 SPI_result_code_string(rc));
		if (SPI_processed > 0 || w == NULL || mq_wait_over(w))
			break;
		SPI_freetuptable(SPI_tuptable);
		mq_wait_sleep(w, DT_NOEND);
	}

	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (i = 0; i < nrows; i++)
		tuplestore_puttuple(store, rows->vals[i]);

	/* auto_commit: each returned partition's committed offset moves past it */
	if (!PG_ARGISNULL(5) && PG_GETARG_BOOL(5) && nrows > 0)
	{
		int64	   *next = palloc(sizeof(int64) * partitions);
		int32		p;

		for (p = 0; p < partitions; p++)
			next[p] = -1;
		for (i = 0; i < nrows; i++)
		{
			int64		off;

			p = DatumGetInt32(SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull));
			off = DatumGetInt64(SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull));
			if (p >= 0 && p < partitions && off + 1 > next[p])
				next[p] = off + 1;
		}
		for (p = 0; p < partitions; p++)
		{
			if (next[p] < 0)
				continue;
			values[0] = Int32GetDatum(group_id);
			values[1] = Int32GetDatum(p);
			values[2] = Int64GetDatum(next[p]);
			mq_stmt_exec(&mq_stmt_commit_update, values, NULL, 0);
		}
	}
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
 *		commit is refused unless the member holds the partition now.
 */
Datum
mq_commit(PG_FUNCTION_ARGS)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	bool		end_null;
	int32		group_id;
	int32		partitions;
	int32		partition;
	int64		next_offset;
	int64		end_offset;

	mq_check_writable("mq.commit()");
	SPI_connect();

	/* the common case in one statement: no member, every argument valid */
	if (!PG_ARGISNULL(0) && !PG_ARGISNULL(1) && !PG_ARGISNULL(2) &&
		!PG_ARGISNULL(3) && PG_ARGISNULL(4))
	{
		values[0] = PG_GETARG_DATUM(0);
		values[1] = PG_GETARG_DATUM(1);
		values[2] = PG_GETARG_DATUM(2);
		values[3] = PG_GETARG_DATUM(3);
		mq_stmt_exec(&mq_stmt_commit_fast, values, NULL, 0);
		if (SPI_processed > 0)
		{
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

	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("partition and next_offset must not be NULL")));
	partition = PG_GETARG_INT32(2);
	next_offset = PG_GETARG_INT64(3);
	if (partition < 0 || partition >= partitions || end_null)
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
	mq_stmt_exec(&mq_stmt_commit_update, values, NULL, 0);
	SPI_finish();
	PG_RETURN_VOID();
}
