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
 * parameter), so no call parses, plans or reads the catalog.
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
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(mq_send);
PG_FUNCTION_INFO_V1(mq_send_batch);
PG_FUNCTION_INFO_V1(mq_poll);
PG_FUNCTION_INFO_V1(mq_pop);
PG_FUNCTION_INFO_V1(mq_ack);
PG_FUNCTION_INFO_V1(mq_ack_batch);
PG_FUNCTION_INFO_V1(mq_extend);

/* $1 queue_id, $2 visible-from, $3 enqueued_at, $4 payload, $5 headers */
static MqStmt mq_stmt_send = {
	"INSERT INTO mq.queue_message"
	" (msg_id, queue_id, vt, enqueued_at, payload, headers)"
	" VALUES (pg_catalog.nextval('mq.msg_id_seq'::pg_catalog.regclass),"
	" $1, $2, $3, $4, $5) RETURNING msg_id",
	5, {INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID, JSONBOID}
};

/* $1 queue_id, $2 visible-from, $3 enqueued_at, $4 payloads, $5 headers */
static MqStmt mq_stmt_send_batch = {
	"INSERT INTO mq.queue_message"
	" (msg_id, queue_id, vt, enqueued_at, payload, headers)"
	" SELECT pg_catalog.nextval('mq.msg_id_seq'::pg_catalog.regclass),"
	" $1, $2, $3, u.p, u.h"
	" FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5)) AS u(p, h)"
	" RETURNING msg_id",
	5, {INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBARRAYOID, JSONBARRAYOID}
};

/* $1 queue_id, $2 now, $3 limit, $4 lease expiry */
static MqStmt mq_stmt_poll = {
	"WITH c AS ("
	"  SELECT ctid FROM mq.queue_message"
	"  WHERE queue_id OPERATOR(pg_catalog.=) $1"
	"    AND vt OPERATOR(pg_catalog.<=) $2"
	"  ORDER BY vt, msg_id LIMIT $3"
	"  FOR UPDATE SKIP LOCKED),"
	" u AS ("
	"  UPDATE mq.queue_message m"
	"  SET vt = $4, attempt = m.attempt OPERATOR(pg_catalog.+) 1"
	"  WHERE m.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.ctid FROM c))"
	"  RETURNING m.msg_id, m.payload, m.headers, m.attempt, m.enqueued_at, m.vt)"
	" SELECT * FROM u ORDER BY msg_id",
	4, {INT4OID, TIMESTAMPTZOID, INT4OID, TIMESTAMPTZOID}
};

/* $1 queue_id, $2 now, $3 limit */
static MqStmt mq_stmt_pop = {
	"WITH c AS ("
	"  SELECT ctid FROM mq.queue_message"
	"  WHERE queue_id OPERATOR(pg_catalog.=) $1"
	"    AND vt OPERATOR(pg_catalog.<=) $2"
	"  ORDER BY vt, msg_id LIMIT $3"
	"  FOR UPDATE SKIP LOCKED),"
	" d AS ("
	"  DELETE FROM mq.queue_message m"
	"  WHERE m.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.ctid FROM c))"
	"  RETURNING m.msg_id, m.payload, m.headers,"
	"    m.attempt OPERATOR(pg_catalog.+) 1 AS attempt, m.enqueued_at,"
	"    $2 AS visible_at)"
	" SELECT * FROM d ORDER BY msg_id",
	3, {INT4OID, TIMESTAMPTZOID, INT4OID}
};

/* $1 queue_id, $2 msg_id */
static MqStmt mq_stmt_ack = {
	"DELETE FROM mq.queue_message"
	" WHERE msg_id OPERATOR(pg_catalog.=) $2"
	"   AND queue_id OPERATOR(pg_catalog.=) $1",
	2, {INT4OID, INT8OID}
};

/* $1 queue_id, $2 msg_ids */
static MqStmt mq_stmt_ack_batch = {
	"DELETE FROM mq.queue_message"
	" WHERE msg_id OPERATOR(pg_catalog.=) ANY ($2)"
	"   AND queue_id OPERATOR(pg_catalog.=) $1",
	2, {INT4OID, INT8ARRAYOID}
};

/* $1 queue_id, $2 msg_id, $3 new visibility */
static MqStmt mq_stmt_extend = {
	"UPDATE mq.queue_message SET vt = $3"
	" WHERE msg_id OPERATOR(pg_catalog.=) $2"
	"   AND queue_id OPERATOR(pg_catalog.=) $1"
	" RETURNING vt",
	3, {INT4OID, INT8OID, TIMESTAMPTZOID}
};

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
 * mq_copy_to_store
 *		Copy every row of SPI_tuptable into a set-returning function's
 *		tuplestore.
 */
static void
mq_copy_to_store(Tuplestorestate *store)
{
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
		tuplestore_puttuple(store, SPI_tuptable->vals[i]);
}

/*
 * mq_send
 *		mq.send(queue_name, payload, headers, delay) RETURNS bigint
 */
Datum
mq_send(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	Interval	zero = {0};
	Interval   *delay = mq_arg_interval(fcinfo, 3, "delay", &zero);
	TimestampTz now = GetCurrentTimestamp();
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int64		msg_id;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be NULL"),
				 errhint("Send a JSON null as 'null'::jsonb.")));

	SPI_connect();
	values[0] = Int32GetDatum(mq_queue_get(qname)->queue_id);
	values[1] = mq_time_plus(now, delay);
	values[2] = TimestampTzGetDatum(now);
	values[3] = PG_GETARG_DATUM(1);
	if (PG_ARGISNULL(2))
	{
		values[4] = (Datum) 0;
		nulls[4] = 'n';
	}
	else
		values[4] = PG_GETARG_DATUM(2);
	mq_stmt_exec(&mq_stmt_send, values, nulls, 0);
	msg_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_INT64(msg_id);
}

/*
 * mq_check_jsonb_array
 *		Complain unless arr is a one-dimensional jsonb array without NULLs
 *		(when nulls_ok is false).  Returns its length.
 */
static int
mq_check_jsonb_array(ArrayType *arr, const char *argname, bool nulls_ok)
{
	int			n;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", argname)));
	n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	if (!nulls_ok && array_contains_nulls(arr))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain NULL elements", argname),
				 errhint("Send a JSON null as 'null'::jsonb.")));
	return n;
}

/*
 * mq_send_batch
 *		mq.send_batch(queue_name, payloads, headers, delay) RETURNS SETOF
 *		bigint: one message per payload, ids in input order.
 */
Datum
mq_send_batch(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	Interval	zero = {0};
	Interval   *delay = mq_arg_interval(fcinfo, 3, "delay", &zero);
	TimestampTz now = GetCurrentTimestamp();
	ArrayType  *payloads;
	int			npayloads;
	Tuplestorestate *store;
	TupleDesc	desc;
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payloads must not be NULL")));
	payloads = PG_GETARG_ARRAYTYPE_P(1);
	npayloads = mq_check_jsonb_array(payloads, "payloads", false);
	if (!PG_ARGISNULL(2))
	{
		ArrayType  *headers = PG_GETARG_ARRAYTYPE_P(2);
		int			nheaders = mq_check_jsonb_array(headers, "headers", true);

		if (nheaders != npayloads)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("headers has %d elements but payloads has %d",
							nheaders, npayloads),
					 errhint("Pass one headers element per payload, or NULL for none.")));
		values[4] = PointerGetDatum(headers);
	}
	else
	{
		values[4] = (Datum) 0;
		nulls[4] = 'n';
	}

	store = mq_srf_init(fcinfo, &desc);
	SPI_connect();
	values[0] = Int32GetDatum(mq_queue_get(qname)->queue_id);
	values[1] = mq_time_plus(now, delay);
	values[2] = TimestampTzGetDatum(now);
	values[3] = PointerGetDatum(payloads);
	if (npayloads > 0)
	{
		mq_stmt_exec(&mq_stmt_send_batch, values, nulls, 0);
		mq_copy_to_store(store);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * mq_poll
 *		mq.poll(queue_name, max_messages, visibility_timeout) RETURNS SETOF
 *		mq.message: lease up to max_messages ready messages, oldest first.
 */
Datum
mq_poll(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	int32		max_messages = mq_arg_max_messages(fcinfo, 1);
	Interval   *vt = mq_arg_interval(fcinfo, 2, "visibility_timeout", NULL);
	TimestampTz now = GetCurrentTimestamp();
	Tuplestorestate *store;
	TupleDesc	desc;
	MqQueue		q;
	Datum		values[4];

	store = mq_srf_init(fcinfo, &desc);
	SPI_connect();
	q = *mq_queue_get(qname);
	values[0] = Int32GetDatum(q.queue_id);
	values[1] = TimestampTzGetDatum(now);
	values[2] = Int32GetDatum(max_messages);
	values[3] = mq_time_plus(now, vt ? vt : &q.visibility_timeout);
	mq_stmt_exec(&mq_stmt_poll, values, NULL, 0);
	mq_copy_to_store(store);
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
	Datum		values[3];

	store = mq_srf_init(fcinfo, &desc);
	SPI_connect();
	values[0] = Int32GetDatum(mq_queue_get(qname)->queue_id);
	values[1] = TimestampTzGetDatum(now);
	values[2] = Int32GetDatum(max_messages);
	mq_stmt_exec(&mq_stmt_pop, values, NULL, 0);
	mq_copy_to_store(store);
	SPI_finish();
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
 *		mq.ack(queue_name, msg_id) RETURNS boolean: delete one message; false
 *		if the queue has no such message.
 */
Datum
mq_ack(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	int64		msg_id = mq_arg_msg_id(fcinfo, 1);
	Datum		values[2];
	uint64		n;

	SPI_connect();
	values[0] = Int32GetDatum(mq_queue_get(qname)->queue_id);
	values[1] = Int64GetDatum(msg_id);
	mq_stmt_exec(&mq_stmt_ack, values, NULL, 0);
	n = SPI_processed;
	SPI_finish();
	PG_RETURN_BOOL(n > 0);
}

/*
 * mq_ack_batch
 *		mq.ack(queue_name, msg_ids bigint[]) RETURNS bigint: delete the
 *		messages; returns how many existed.
 */
Datum
mq_ack_batch(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	Datum		values[2];
	uint64		n;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("msg_ids must not be NULL")));
	SPI_connect();
	values[0] = Int32GetDatum(mq_queue_get(qname)->queue_id);
	values[1] = PG_GETARG_DATUM(1);
	mq_stmt_exec(&mq_stmt_ack_batch, values, NULL, 0);
	n = SPI_processed;
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}

/*
 * mq_extend
 *		mq.extend(queue_name, msg_id, visibility_timeout) RETURNS timestamptz:
 *		the message becomes visible visibility_timeout from now ('0' releases
 *		it at once).  NULL if the message is gone.
 */
Datum
mq_extend(PG_FUNCTION_ARGS)
{
	text	   *qname = mq_arg_queue_name(fcinfo, 0);
	int64		msg_id = mq_arg_msg_id(fcinfo, 1);
	Interval   *vt;
	TimestampTz now = GetCurrentTimestamp();
	Datum		values[3];
	Datum		result = (Datum) 0;
	bool		isnull = true;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("visibility_timeout must not be NULL")));
	vt = mq_arg_interval(fcinfo, 2, "visibility_timeout", NULL);

	SPI_connect();
	values[0] = Int32GetDatum(mq_queue_get(qname)->queue_id);
	values[1] = Int64GetDatum(msg_id);
	values[2] = mq_time_plus(now, vt);
	mq_stmt_exec(&mq_stmt_extend, values, NULL, 0);
	if (SPI_processed > 0)
		result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
							   1, &isnull);
	SPI_finish();
	if (isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(result);
}
