/*-------------------------------------------------------------------------
 *
 * queue.c
 *	  The queue hot paths: send, send_batch, poll, pop, ack, extend.
 *
 * Every message of every queue is a row of mq.queue_message.  A row is
 * ready when vt <= now; poll leases ready rows by moving vt to the lease
 * expiry and counting the attempt, in one statement that locks with SKIP
 * LOCKED, so concurrent pollers never see the same row and a poll that
 * rolls back (locked mode) leaves the row exactly as it was.  Each
 * statement is a saved plan shared by all queues (the queue is a
 * parameter), so no call parses, plans or reads the catalog; each runs
 * under mq_stmt_exec_guarded, so its access path does not depend on the
 * table's statistics.  Every call holds the queue's lock (catalog.c) until
 * its transaction ends, except a poll attempt that leases nothing, which
 * is undone with its locks.  The lease's vt is its receipt: ack, extend
 * (and nack, reject in SQL) given one act only on that lease.
 *
 * Time is the clock at the call (not the transaction start), so a long
 * transaction that polls in a loop keeps seeing messages become ready.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/resowner.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(mq_send);
PG_FUNCTION_INFO_V1(mq_send_batch);
PG_FUNCTION_INFO_V1(mq_poll);
PG_FUNCTION_INFO_V1(mq_pop);
PG_FUNCTION_INFO_V1(mq_ack);
PG_FUNCTION_INFO_V1(mq_ack_batch);
PG_FUNCTION_INFO_V1(mq_extend);

/*
 * mq.queue_message as send and send_batch write it, every column given.
 * The order of MQ_COL_* below.
 */
static MqDirectRel mq_rel_message = {
	"queue_message", 11,
	{"msg_id", "vt", "enqueued_at", "queue_id", "attempt", "origin_queue_id",
	"exhausted", "payload", "headers", "last_error", "deaths"}
};
#define MQ_MSG_NCOLS 11

/*
 * Send with a dedup key.  $1 queue_id, $2 visible-from, $3 enqueued_at,
 * $4 payload, $5 headers, $6 dedup key, $7 start of the dedup window.
 * The key's row is claimed first (a live key conflicts and yields no row;
 * a concurrent sender of the same key waits for us), then the message is
 * inserted under the claimed id.  No row back means a duplicate.
 */
static MqStmt mq_stmt_send_dedup = {
	"WITH d AS ("
	"  INSERT INTO mq.dedup AS d (queue_id, dedup_key, msg_id, created_at)"
	"  VALUES ($1, $6, pg_catalog.nextval('mq.msg_id_seq'::pg_catalog.regclass), $3)"
	"  ON CONFLICT (queue_id, dedup_key) DO UPDATE"
	"    SET msg_id = excluded.msg_id, created_at = excluded.created_at"
	"    WHERE d.created_at OPERATOR(pg_catalog.<) $7"
	"  RETURNING d.msg_id)"
	" INSERT INTO mq.queue_message"
	" (msg_id, queue_id, vt, enqueued_at, payload, headers)"
	" SELECT d.msg_id, $1, $2, $3, $4, $5 FROM d"
	" RETURNING msg_id",
	7, {INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID, JSONBOID, TEXTOID,
	TIMESTAMPTZOID}
};

/* $1 queue_id, $2 dedup key: the id a live duplicate key stands for */
static MqStmt mq_stmt_dedup_lookup = {
	"SELECT msg_id FROM mq.dedup"
	" WHERE queue_id OPERATOR(pg_catalog.=) $1"
	"   AND dedup_key OPERATOR(pg_catalog.=) $2",
	2, {INT4OID, TEXTOID}
};

/*
 * $1 queue_id, $2 now, $3 limit, $4 lease expiry, $5 TTL cut-off (enqueued
 * before it: expired), $6 the attempt that exhausts the message.
 * Exhausted and expired rows are left for the worker to dead-letter.
 */
static MqStmt mq_stmt_poll = {
	"WITH c AS ("
	"  SELECT ctid FROM mq.queue_message"
	"  WHERE queue_id OPERATOR(pg_catalog.=) $1"
	"    AND vt OPERATOR(pg_catalog.<=) $2"
	"    AND NOT exhausted AND enqueued_at OPERATOR(pg_catalog.>=) $5"
	"  ORDER BY vt LIMIT $3"
	"  FOR UPDATE SKIP LOCKED),"
	" u AS ("
	"  UPDATE mq.queue_message m"
	"  SET vt = $4, attempt = m.attempt OPERATOR(pg_catalog.+) 1,"
	"      exhausted = m.attempt OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.>=) $6"
	"  WHERE m.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.ctid FROM c))"
	"  RETURNING m.msg_id, m.payload, m.headers, m.attempt, m.enqueued_at, m.vt,"
	"    m.last_error, m.deaths)"
	" SELECT * FROM u ORDER BY msg_id",
	6, {INT4OID, TIMESTAMPTZOID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID}
};

/* $1 queue_id, $2 now: when the next message of the queue becomes ready */
static MqStmt mq_stmt_next_ready = {
	"SELECT vt FROM mq.queue_message"
	" WHERE queue_id OPERATOR(pg_catalog.=) $1"
	"   AND vt OPERATOR(pg_catalog.>) $2"
	" ORDER BY vt LIMIT 1",
	2, {INT4OID, TIMESTAMPTZOID}
};

/* $1 queue_id, $2 now, $3 limit, $4 TTL cut-off */
static MqStmt mq_stmt_pop = {
	"WITH c AS ("
	"  SELECT ctid FROM mq.queue_message"
	"  WHERE queue_id OPERATOR(pg_catalog.=) $1"
	"    AND vt OPERATOR(pg_catalog.<=) $2"
	"    AND NOT exhausted AND enqueued_at OPERATOR(pg_catalog.>=) $4"
	"  ORDER BY vt LIMIT $3"
	"  FOR UPDATE SKIP LOCKED),"
	" d AS ("
	"  DELETE FROM mq.queue_message m"
	"  WHERE m.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.ctid FROM c))"
	"  RETURNING m.msg_id, m.payload, m.headers,"
	"    m.attempt OPERATOR(pg_catalog.+) 1 AS attempt, m.enqueued_at,"
	"    $2 AS visible_at, m.last_error, m.deaths)"
	" SELECT * FROM d ORDER BY msg_id",
	4, {INT4OID, TIMESTAMPTZOID, INT4OID, TIMESTAMPTZOID}
};

/* $1 queue_id, $2 msg_id */
static MqStmt mq_stmt_ack = {
	"DELETE FROM mq.queue_message"
	" WHERE msg_id OPERATOR(pg_catalog.=) $2"
	"   AND queue_id OPERATOR(pg_catalog.+) 0 OPERATOR(pg_catalog.=) $1",
	2, {INT4OID, INT8OID}
};

/* $1 queue_id, $2 msg_id, $3 receipt: only the lease it was issued for */
static MqStmt mq_stmt_ack_receipt = {
	"DELETE FROM mq.queue_message"
	" WHERE msg_id OPERATOR(pg_catalog.=) $2"
	"   AND queue_id OPERATOR(pg_catalog.+) 0 OPERATOR(pg_catalog.=) $1"
	"   AND vt OPERATOR(pg_catalog.=) $3",
	3, {INT4OID, INT8OID, TIMESTAMPTZOID}
};

/*
 * $1 queue_id, $2 msg_ids, $3 their receipts (same length, checked by the
 * caller): each message only under the lease its receipt names (a NULL
 * receipt: whatever its lease).
 */
static MqStmt mq_stmt_ack_batch_receipt = {
	"DELETE FROM mq.queue_message m"
	" USING ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)) AS r(msg_id, vt)"
	" WHERE m.msg_id OPERATOR(pg_catalog.=) r.msg_id"
	"   AND m.queue_id OPERATOR(pg_catalog.+) 0 OPERATOR(pg_catalog.=) $1"
	"   AND (r.vt IS NULL OR m.vt OPERATOR(pg_catalog.=) r.vt)",
	3, {INT4OID, INT8ARRAYOID, TIMESTAMPTZARRAYOID}
};

/* $1 queue_id, $2 msg_ids */
static MqStmt mq_stmt_ack_batch = {
	"DELETE FROM mq.queue_message"
	" WHERE msg_id OPERATOR(pg_catalog.=) ANY ($2)"
	"   AND queue_id OPERATOR(pg_catalog.+) 0 OPERATOR(pg_catalog.=) $1",
	2, {INT4OID, INT8ARRAYOID}
};

/* $1 queue_id, $2 msg_id, $3 new visibility */
static MqStmt mq_stmt_extend = {
	"UPDATE mq.queue_message SET vt = $3"
	" WHERE msg_id OPERATOR(pg_catalog.=) $2"
	"   AND queue_id OPERATOR(pg_catalog.+) 0 OPERATOR(pg_catalog.=) $1"
	" RETURNING vt",
	3, {INT4OID, INT8OID, TIMESTAMPTZOID}
};

/* $1 queue_id, $2 msg_id, $3 new visibility, $4 receipt */
static MqStmt mq_stmt_extend_receipt = {
	"UPDATE mq.queue_message SET vt = $3"
	" WHERE msg_id OPERATOR(pg_catalog.=) $2"
	"   AND queue_id OPERATOR(pg_catalog.+) 0 OPERATOR(pg_catalog.=) $1"
	"   AND vt OPERATOR(pg_catalog.=) $4"
	" RETURNING vt",
	4, {INT4OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID}
};

/*
 * mq_arg_receipt
 *		The optional receipt argument argno (a lease's visible_at, as poll or
 *		the last extend returned it): true and *receipt set if given.  The
 *		0.1.0 SQL declarations have no such argument.
 */
static bool
mq_arg_receipt(FunctionCallInfo fcinfo, int argno, Datum *receipt)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return false;
	*receipt = PG_GETARG_DATUM(argno);
	return true;
}

/*
 * mq_time_plus
 *		ts + iv, as a timestamptz Datum.
 */
/*
 * mq_time_plus
 *		ts + iv, as a timestamptz Datum.
 */
static Datum
mq_time_plus(TimestampTz ts, Interval *iv)
{
	return DirectFunctionCall2(timestamptz_pl_interval,
							   TimestampTzGetDatum(ts),
							   IntervalPGetDatum(iv));
}

/*
 * mq_time_minus
 *		ts - iv, as a timestamptz Datum.
 */
static Datum
mq_time_minus(TimestampTz ts, Interval *iv)
{
	return DirectFunctionCall2(timestamptz_mi_interval,
							   TimestampTzGetDatum(ts),
							   IntervalPGetDatum(iv));
}

/*
 * mq_ttl_cutoff
 *		Messages of q enqueued before this have expired.
 */
static Datum
mq_ttl_cutoff(const MqQueue *q, TimestampTz now)
{
	if (!q->has_ttl)
		return TimestampTzGetDatum(DT_NOBEGIN);
	return mq_time_minus(now, (Interval *) &q->message_ttl);
}

/*
 * mq_store_all
 *		Copy every row of SPI_tuptable into a tuplestore.
 */
static void
mq_store_all(Tuplestorestate *store)
{
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
		tuplestore_puttuple(store, SPI_tuptable->vals[i]);
}

/*
 * mq_deliver_to_store
 *		Copy the rows of SPI_tuptable (mq.message rows) into a set-returning
 *		function's tuplestore, noting each delivery for the transaction
 *		(attempts.c: the attempt shown includes deliveries a rollback undid).
 */
static void
mq_deliver_to_store(Tuplestorestate *store, int32 queue_id)
{
	mq_attempts_deliver(store, queue_id);
}

/*
 * mq_message_row
 *		Fill values/nulls (mq_rel_message's order) with a new message.
 */
static void
mq_message_row(Datum *values, bool *nulls, int64 msg_id, int32 queue_id,
			   Datum vt, TimestampTz now, Datum payload, Datum headers,
			   bool headers_null)
{
	values[0] = Int64GetDatum(msg_id);
	values[1] = vt;
	values[2] = TimestampTzGetDatum(now);
	values[3] = Int32GetDatum(queue_id);
	values[4] = Int32GetDatum(0);
	values[5] = (Datum) 0;
	values[6] = BoolGetDatum(false);
	values[7] = payload;
	values[8] = headers;
	nulls[0] = nulls[1] = nulls[2] = nulls[3] = nulls[4] = false;
	nulls[5] = true;
	nulls[6] = nulls[7] = false;
	nulls[8] = headers_null;
	nulls[9] = nulls[10] = true;
	values[9] = values[10] = (Datum) 0;
}

/*
 * mq_send_one
 *		Insert one message under a dedup key; returns its id.  A live
 *		duplicate inserts nothing and returns the original id; *inserted
 *		tells which happened.  Inside SPI.
 */
static int64
mq_send_one(const MqQueue *q, TimestampTz now, Datum vt, Datum payload,
			Datum headers, bool headers_null, text *dedup_key, bool *inserted)
{
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	values[0] = Int32GetDatum(q->queue_id);
	values[1] = vt;
	values[2] = TimestampTzGetDatum(now);
	values[3] = payload;
	values[4] = headers;
	if (headers_null)
		nulls[4] = 'n';
	values[5] = PointerGetDatum(dedup_key);
	values[6] = mq_time_minus(now, (Interval *) &q->dedup_window);
	mq_stmt_exec(&mq_stmt_send_dedup, values, nulls, 0);
	*inserted = (SPI_processed > 0);
	if (!*inserted)
	{
		values[1] = values[5];
		mq_stmt_exec(&mq_stmt_dedup_lookup, values, NULL, 1);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not resolve dedup key \"%s\" of queue \"%s\"",
							text_to_cstring(dedup_key), q->name),
					 errhint("Retry the transaction.")));
	}
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * mq_send
 *		mq.send(queue_name, payload, headers, delay, dedup_key) RETURNS bigint
 */
Datum
mq_send(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	Interval	zero = {0};
	Interval   *delay = mq_arg_interval(fcinfo, 3, "delay", &zero);
	text	   *dedup_key = PG_ARGISNULL(4) ? NULL : PG_GETARG_TEXT_PP(4);
	TimestampTz now = GetCurrentTimestamp();
	MqQueue		q;
	bool		inserted;
	int64		msg_id;

	mq_check_writable("mq.send()");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be NULL"),
				 errhint("Send a JSON null as 'null'::jsonb.")));

	if (dedup_key == NULL)
	{
		MqDirect	d;
		Datum		values[MQ_MSG_NCOLS];
		bool		nulls[MQ_MSG_NCOLS];

		/* open first: taking the lock processes pending invalidations */
		mq_direct_open(&d, &mq_rel_message, "mq.send()", true);
		q = *mq_acl_queue_get(qname, MQ_PRIV_SEND);
		msg_id = mq_next_msg_id();
		mq_message_row(values, nulls, msg_id, q.queue_id,
					   mq_time_plus(now, delay), now, PG_GETARG_DATUM(1),
					   PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2),
					   PG_ARGISNULL(2));
		mq_direct_insert(&d, values, nulls);
		mq_direct_close(&d);
		inserted = true;
	}
	else
	{
		SPI_connect();
		q = *mq_acl_queue_get(qname, MQ_PRIV_SEND);
		msg_id = mq_send_one(&q, now, mq_time_plus(now, delay), PG_GETARG_DATUM(1),
							 PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2),
							 PG_ARGISNULL(2), dedup_key, &inserted);
		SPI_finish();
	}
	if (inserted)
	{
		mq_xact_count(q.queue_id, MQ_SENT, 1);
		mq_xact_wake(q.queue_id);
	}
	PG_RETURN_INT64(msg_id);
}

/*
 * mq_send_batch
 *		mq.send_batch(queue_name, payloads, headers, delay, dedup_keys)
 *		RETURNS SETOF bigint: one message per payload, ids in input order.
 *
 * Without dedup keys the batch is one multi-row insert (direct.c); with them
 * each keyed message claims its key in turn (a NULL key means no dedup).
 */
Datum
mq_send_batch(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	Interval	zero = {0};
	Interval   *delay = mq_arg_interval(fcinfo, 3, "delay", &zero);
	TimestampTz now = GetCurrentTimestamp();
	ArrayType  *payloads;
	ArrayType  *headers = NULL;
	ArrayType  *keys = NULL;
	int			npayloads;
	Tuplestorestate *store;
	TupleDesc	desc;
	MqQueue		q;
	int64		sent = 0;

	mq_check_writable("mq.send_batch()");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payloads must not be NULL")));
	payloads = PG_GETARG_ARRAYTYPE_P(1);
	npayloads = mq_check_array(payloads, "payloads", false);
	if (!PG_ARGISNULL(2))
	{
		headers = PG_GETARG_ARRAYTYPE_P(2);
		mq_check_same_length(mq_check_array(headers, "headers", true),
							 npayloads, "headers");
	}
	if (!PG_ARGISNULL(4))
	{
		keys = PG_GETARG_ARRAYTYPE_P(4);
		mq_check_same_length(mq_check_array(keys, "dedup_keys", true),
							 npayloads, "dedup_keys");
	}

	store = mq_srf_init(fcinfo, &desc);
	if (npayloads > 0 && keys == NULL)
	{
		MqDirect	d;
		Datum	   *pv,
				   *hv = NULL;
		bool	   *pn,
				   *hn = NULL;
		Datum	   *values;
		bool	   *nulls;
		Datum		vt = mq_time_plus(now, delay);
		int			n;
		int			i;

		mq_direct_open(&d, &mq_rel_message, "mq.send_batch()", true);
		q = *mq_acl_queue_get(qname, MQ_PRIV_SEND);
		deconstruct_array(payloads, JSONBOID, -1, false, TYPALIGN_INT, &pv, &pn, &n);
		if (headers != NULL)
			deconstruct_array(headers, JSONBOID, -1, false, TYPALIGN_INT, &hv, &hn, &n);
		values = palloc(sizeof(Datum) * MQ_MSG_NCOLS * npayloads);
		nulls = palloc(sizeof(bool) * MQ_MSG_NCOLS * npayloads);
		for (i = 0; i < npayloads; i++)
		{
			int64		id = mq_next_msg_id();
			Datum		idd = Int64GetDatum(id);
			bool		idnull = false;

			mq_message_row(values + i * MQ_MSG_NCOLS, nulls + i * MQ_MSG_NCOLS,
						   id, q.queue_id, vt, now, pv[i],
						   hv ? hv[i] : (Datum) 0, hv == NULL || hn[i]);
			tuplestore_putvalues(store, desc, &idd, &idnull);
		}
		mq_direct_insert_many(&d, npayloads, values, nulls);
		mq_direct_close(&d);
		sent = npayloads;
	}
	else if (npayloads > 0)
	{
		Datum	   *pv, *hv = NULL, *kv;
		bool	   *pn, *hn = NULL, *kn;
		int			n;
		int			i;
		Datum		vt = mq_time_plus(now, delay);

		SPI_connect();
		q = *mq_acl_queue_get(qname, MQ_PRIV_SEND);
		deconstruct_array(payloads, JSONBOID, -1, false, TYPALIGN_INT, &pv, &pn, &n);
		if (headers != NULL)
			deconstruct_array(headers, JSONBOID, -1, false, TYPALIGN_INT, &hv, &hn, &n);
		deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &kv, &kn, &n);
		for (i = 0; i < npayloads; i++)
		{
			bool		inserted;
			int64		id;
			Datum		idd;
			bool		idnull = false;

			if (kn[i])
			{
				MqDirect	d;
				Datum		values[MQ_MSG_NCOLS];
				bool		nulls[MQ_MSG_NCOLS];

				id = mq_next_msg_id();
				mq_direct_open(&d, &mq_rel_message, "mq.send_batch()", true);
				mq_message_row(values, nulls, id, q.queue_id, vt, now, pv[i],
							   hv ? hv[i] : (Datum) 0, hv == NULL || hn[i]);
				mq_direct_insert(&d, values, nulls);
				mq_direct_close(&d);
				inserted = true;
			}
			else
				id = mq_send_one(&q, now, vt, pv[i],
								 hv ? hv[i] : (Datum) 0, hv == NULL || hn[i],
								 DatumGetTextPP(kv[i]), &inserted);
			if (inserted)
				sent++;
			idd = Int64GetDatum(id);
			tuplestore_putvalues(store, desc, &idd, &idnull);
		}
		SPI_finish();
	}
	else
		q = *mq_acl_queue_get(qname, MQ_PRIV_SEND);
	if (sent > 0)
	{
		mq_xact_count(q.queue_id, MQ_SENT, sent);
		mq_xact_wake(q.queue_id);
	}
	return (Datum) 0;
}

/*
 * mq_poll_once
 *		One attempt to lease up to max_messages messages of the queue called
 *		qname (its row in *q on return).  Returns how many.  Inside SPI.
 *
 * The attempt runs in a subtransaction that is rolled back when it leases
 * nothing.  Its FOR UPDATE SKIP LOCKED scan locks a row that another
 * consumer leased after the attempt's snapshot was taken before it finds,
 * on rechecking, that the row is no longer ready; the row is not returned
 * but its lock would last until our transaction ends (for a long poll, the
 * end of its wait, with acks of the row waiting behind it).  Rolling back
 * an empty attempt releases every row lock it took, and the queue's lock
 * if it was taken by the attempt: a sleeping poll holds no lock at all.
 */
static uint64
mq_poll_once(text *qname, MqQueue *q, int32 max_messages, Interval *vt,
			 MqWaiter *w, Tuplestorestate *store)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	uint64		n = 0;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		TimestampTz now;
		Datum		values[6];

		*q = *mq_acl_queue_get(qname, MQ_PRIV_RECEIVE);
		if (w != NULL)
			mq_wait_arm(w, MQ_WAIT_QUEUE, q->queue_id);
		now = GetCurrentTimestamp();
		values[0] = Int32GetDatum(q->queue_id);
		values[1] = TimestampTzGetDatum(now);
		values[2] = Int32GetDatum(max_messages);
		values[3] = mq_time_plus(now, vt ? vt : (Interval *) &q->visibility_timeout);
		values[4] = mq_ttl_cutoff(q, now);
		values[5] = Int32GetDatum(q->has_dlq ? q->max_attempts : PG_INT32_MAX);
		mq_stmt_exec_guarded(&mq_stmt_poll, values, NULL, 0);
		n = SPI_processed;
		if (n > 0)
		{
			mq_deliver_to_store(store, q->queue_id);
			ReleaseCurrentSubTransaction();
		}
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ReThrowError(edata);
	}
	PG_END_TRY();
	return n;
}

/*
 * mq_next_ready
 *		When the next not-yet-ready message of q becomes ready (a delayed
 *		message or a lapsing lease); DT_NOEND if none.  Inside SPI.
 */
static TimestampTz
mq_next_ready(const MqQueue *q, TimestampTz now)
{
	Datum		values[2];
	bool		isnull;

	values[0] = Int32GetDatum(q->queue_id);
	values[1] = TimestampTzGetDatum(now);
	mq_stmt_exec_guarded(&mq_stmt_next_ready, values, NULL, 1);
	if (SPI_processed == 0)
		return DT_NOEND;
	return DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * mq_poll
 *		mq.poll(queue_name, max_messages, visibility_timeout, wait) RETURNS
 *		SETOF mq.message: lease up to max_messages ready messages, oldest
 *		first.  With a wait, sleep until a message is ready or the wait is
 *		over: on the queue's condition variable, which the commit of a send
 *		(or nack, redrive, release) broadcasts, and no longer than until the
 *		next delayed message or lapsing lease becomes ready.
 */
Datum
mq_poll(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	int32		max_messages = mq_arg_max_messages(fcinfo, 1);
	Interval   *vt = mq_arg_interval(fcinfo, 2, "visibility_timeout", NULL);
	Interval	zero = {0};
	Interval   *wait = mq_arg_interval(fcinfo, 3, "wait", &zero);
	Tuplestorestate *store;
	TupleDesc	desc;
	MqQueue		q;
	MqWaiter	waiter;
	MqWaiter   *w;

	w = mq_wait_start(&waiter, "mq.poll", wait);
	store = mq_srf_init(fcinfo, &desc);
	SPI_connect();
	for (;;)
	{
		if (mq_poll_once(qname, &q, max_messages, vt, w, store) > 0 ||
			w == NULL || mq_wait_over(w))
			break;
		mq_wait_sleep(w, mq_next_ready(&q, GetCurrentTimestamp()));
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * mq_pop
 *		mq.pop(queue_name, max_messages) RETURNS SETOF mq.message: read and
 *		delete up to max_messages ready messages (at-most-once).
 */
Datum
mq_pop(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	int32		max_messages = mq_arg_max_messages(fcinfo, 1);
	TimestampTz now = GetCurrentTimestamp();
	Tuplestorestate *store;
	TupleDesc	desc;
	Datum		values[4];
	MqQueue		q;
	uint64		n;

	store = mq_srf_init(fcinfo, &desc);
	SPI_connect();
	q = *mq_acl_queue_get(qname, MQ_PRIV_RECEIVE);
	values[0] = Int32GetDatum(q.queue_id);
	values[1] = TimestampTzGetDatum(now);
	values[2] = Int32GetDatum(max_messages);
	values[3] = mq_ttl_cutoff(&q, now);
	mq_stmt_exec_guarded(&mq_stmt_pop, values, NULL, 0);
	n = SPI_processed;
	mq_store_all(store);
	SPI_finish();
	if (n > 0)
		mq_xact_count(q.queue_id, MQ_ACKED, (int64) n);
	return (Datum) 0;
}

/*
 * mq_arg_msg_id
 *		A msg_id argument; NULL is an error.
 */
static int64
mq_arg_msg_id(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("msg_id must not be NULL")));
	return PG_GETARG_INT64(argno);
}

/*
 * mq_ack
 *		mq.ack(queue_name, msg_id, receipt) RETURNS boolean: delete one
 *		message; false if the queue has no such message, or (with a
 *		receipt) if the lease the receipt names is over: the message was
 *		redelivered, released or moved since.
 */
Datum
mq_ack(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	int64		msg_id = mq_arg_msg_id(fcinfo, 1);
	Datum		values[3];
	bool		with_receipt = mq_arg_receipt(fcinfo, 2, &values[2]);
	int32		queue_id;
	uint64		n;

	SPI_connect();
	queue_id = mq_acl_queue_get(qname, MQ_PRIV_RECEIVE)->queue_id;
	values[0] = Int32GetDatum(queue_id);
	values[1] = Int64GetDatum(msg_id);
	mq_stmt_exec_guarded(with_receipt ? &mq_stmt_ack_receipt : &mq_stmt_ack,
				 values, NULL, 0);
	n = SPI_processed;
	SPI_finish();
	if (n > 0)
		mq_xact_count(queue_id, MQ_ACKED, (int64) n);
	PG_RETURN_BOOL(n > 0);
}

/*
 * mq_ack_batch
 *		mq.ack(queue_name, msg_ids bigint[], receipts timestamptz[]) RETURNS
 *		bigint: delete the messages (each only under the lease its receipt
 *		names, when receipts are given); returns how many were deleted.
 */
Datum
mq_ack_batch(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	Datum		values[3];
	bool		with_receipts = mq_arg_receipt(fcinfo, 2, &values[2]);
	int32		queue_id;
	uint64		n;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("msg_ids must not be NULL")));
	if (with_receipts)
	{
		int			nreceipts = mq_check_array(PG_GETARG_ARRAYTYPE_P(2), "receipts", true);
		int			nids = mq_check_array(PG_GETARG_ARRAYTYPE_P(1), "msg_ids", true);

		if (nreceipts != nids)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("receipts has %d elements but msg_ids has %d",
							nreceipts, nids),
					 errhint("Pass one receipt per message id, or NULL for none.")));
	}
	SPI_connect();
	queue_id = mq_acl_queue_get(qname, MQ_PRIV_RECEIVE)->queue_id;
	values[0] = Int32GetDatum(queue_id);
	values[1] = PG_GETARG_DATUM(1);
	mq_stmt_exec_guarded(with_receipts ? &mq_stmt_ack_batch_receipt : &mq_stmt_ack_batch,
				 values, NULL, 0);
	n = SPI_processed;
	SPI_finish();
	if (n > 0)
		mq_xact_count(queue_id, MQ_ACKED, (int64) n);
	PG_RETURN_INT64((int64) n);
}

/*
 * mq_extend
 *		mq.extend(queue_name, msg_id, visibility_timeout, receipt) RETURNS
 *		timestamptz: the message becomes visible visibility_timeout from now
 *		('0' releases it at once and wakes waiters).  NULL if the message is
 *		gone, or (with a receipt) if the lease the receipt names is over.
 *		The result is the lease's new receipt.
 */
Datum
mq_extend(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	int64		msg_id = mq_arg_msg_id(fcinfo, 1);
	Interval   *vt;
	TimestampTz now = GetCurrentTimestamp();
	Datum		values[4];
	bool		with_receipt = mq_arg_receipt(fcinfo, 3, &values[3]);
	Datum		result = (Datum) 0;
	bool		isnull = true;
	int32		queue_id;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("visibility_timeout must not be NULL")));
	vt = mq_arg_interval(fcinfo, 2, "visibility_timeout", NULL);

	SPI_connect();
	queue_id = mq_acl_queue_get(qname, MQ_PRIV_RECEIVE)->queue_id;
	values[0] = Int32GetDatum(queue_id);
	values[1] = Int64GetDatum(msg_id);
	values[2] = mq_time_plus(now, vt);
	mq_stmt_exec_guarded(with_receipt ? &mq_stmt_extend_receipt : &mq_stmt_extend,
				 values, NULL, 0);
	if (SPI_processed > 0)
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							   1, &isnull);
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	if (vt->time == 0 && vt->day == 0 && vt->month == 0)
		mq_xact_wake(queue_id);
	PG_RETURN_DATUM(result);
}
