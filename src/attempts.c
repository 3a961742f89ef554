/*-------------------------------------------------------------------------
 *
 * attempts.c
 *	  Attempts of deliveries that a rollback undid.
 *
 * poll raises a message's attempt in the consumer's transaction; when that
 * transaction (or the subtransaction that polled) rolls back, the raise is
 * undone with it.  So that a consumer that keeps failing in locked mode
 * still drives a poison message to its dead-letter queue, this file notes
 * every delivery in backend memory, hands the deliveries of a rollback to
 * shared memory as debts, and counts the debts as attempts in the
 * worker's pass (mq_attempts_apply).
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/memutils.h"

static MqDelivery *mq_delivered = NULL;
static SubTransactionId *mq_delivered_subid = NULL;
static int	mq_ndelivered = 0;
static int	mq_maxdelivered = 0;

static void mq_abort_store(Oid dboid, const MqDelivery *d, int n);

/*
 * Count aborted deliveries as attempts: $1 msg_ids, $2 how many each.
 * Only rows that are leased (in flight) or that the debt exhausts are
 * touched; a ready row is left alone so that a rollback makes its message
 * available again at once (the debt waits for its next lease), and rows
 * locked by someone are skipped.
 */
static MqStmt mq_stmt_count_attempts = {
	"WITH d AS ("
	"  SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
	"  AS d(msg_id, n)),"
	" c AS ("
	"  SELECT m.msg_id, d.n FROM mq.queue_message m"
	"  JOIN d ON m.msg_id OPERATOR(pg_catalog.=) d.msg_id"
	"  JOIN mq.queue q ON q.queue_id OPERATOR(pg_catalog.=) m.queue_id"
	"  WHERE m.vt OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp()"
	"     OR (q.dead_letter_queue_id IS NOT NULL AND"
	"         m.attempt OPERATOR(pg_catalog.+) d.n OPERATOR(pg_catalog.>=) q.max_attempts)"
	"  FOR UPDATE OF m SKIP LOCKED)"
	" UPDATE mq.queue_message m"
	" SET attempt = m.attempt OPERATOR(pg_catalog.+) c.n,"
	"     exhausted = (q.dead_letter_queue_id IS NOT NULL AND"
	"                  m.attempt OPERATOR(pg_catalog.+) c.n OPERATOR(pg_catalog.>=) q.max_attempts)"
	" FROM c, mq.queue q"
	" WHERE m.msg_id OPERATOR(pg_catalog.=) c.msg_id"
	"   AND q.queue_id OPERATOR(pg_catalog.=) m.queue_id"
	" RETURNING m.msg_id",
	2, {INT8ARRAYOID, INT4ARRAYOID}
};

/*
 * Passes that count attempts run one at a time (the worker and
 * mq.run_maintenance()), so the debts of a message are never split between
 * two passes.  An advisory lock of the transaction: key (0x6d71, 1).
 */
static MqStmt mq_stmt_attempts_lock = {
	"SELECT pg_catalog.pg_advisory_xact_lock(28017, 1)", 0, {InvalidOid}
};

static MqStmt mq_stmt_still_there = {
	"SELECT m.msg_id, m.queue_id FROM mq.queue_message m"
	" WHERE m.msg_id OPERATOR(pg_catalog.=) ANY ($1)",
	1, {INT8ARRAYOID}
};

/*
 * mq_abort_push
 *		Remember deliveries made by a transaction that is aborting, so the
 *		worker can count them as attempts.  Drops what does not fit.
 */
static void
mq_abort_push(Oid dboid, const MqDelivery *d, int n)
{
	mq_abort_store(dboid, d, n);
	mq_worker_wake(dboid);
}

/*
 * mq_abort_push_quiet
 *		Put debts back without waking the worker (they wait for its next
 *		pass).
 */
static void
mq_abort_push_quiet(Oid dboid, const MqDelivery *d, int n)
{
	mq_abort_store(dboid, d, n);
}

/*
 * mq_abort_store
 *		Append to the ring of aborted deliveries; drops what does not fit.
 */
static void
mq_abort_store(Oid dboid, const MqDelivery *d, int n)
{
	int			i;
	bool		lost = false;

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < n; i++)
	{
		uint64		next = mq_shared->abort_head + 1;

		if (next - mq_shared->abort_tail > MQ_ABORT_RING)
		{
			mq_shared->aborts_lost += n - i;
			lost = true;
			break;
		}
		mq_shared->aborts[mq_shared->abort_head % MQ_ABORT_RING].dboid = dboid;
		mq_shared->aborts[mq_shared->abort_head % MQ_ABORT_RING].d = d[i];
		mq_shared->abort_head = next;
	}
	LWLockRelease(mq_shared->lock);
	if (lost)
		ereport(WARNING,
				(errmsg("mq: %d aborted deliveries were not counted as attempts", n - i),
				 errdetail("The ring of aborted deliveries is full; is the mq background worker running?")));
}

/*
 * mq_abort_take
 *		Take up to max aborted deliveries of dboid out of the ring.  Entries
 *		of other databases stay (they are moved to the front).
 */
static int
mq_abort_take(Oid dboid, MqDelivery *out, int max)
{
	uint64		i;
	uint64		keep;
	int			n = 0;

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	keep = mq_shared->abort_head;
	for (i = mq_shared->abort_tail; i < mq_shared->abort_head; i++)
	{
		MqAbortEntry *e = &mq_shared->aborts[i % MQ_ABORT_RING];

		if (e->dboid == dboid && n < max)
		{
			out[n++] = e->d;
			e->dboid = InvalidOid;	/* consumed */
		}
	}
	/* advance the tail past consumed entries */
	while (mq_shared->abort_tail < keep &&
		   mq_shared->aborts[mq_shared->abort_tail % MQ_ABORT_RING].dboid == InvalidOid)
		mq_shared->abort_tail++;
	LWLockRelease(mq_shared->lock);
	return n;
}
/*
 * mq_xact_delivered
 *		Note that poll delivered msg_id in this (sub)transaction.
 */
void
mq_xact_delivered(int32 queue_id, int64 msg_id)
{
	if (mq_ndelivered == mq_maxdelivered)
	{
		mq_maxdelivered = mq_maxdelivered ? mq_maxdelivered * 2 : 64;
		if (mq_delivered == NULL)
		{
			mq_delivered = MemoryContextAlloc(TopMemoryContext,
											  mq_maxdelivered * sizeof(MqDelivery));
			mq_delivered_subid = MemoryContextAlloc(TopMemoryContext,
													mq_maxdelivered * sizeof(SubTransactionId));
		}
		else
		{
			mq_delivered = repalloc(mq_delivered,
									mq_maxdelivered * sizeof(MqDelivery));
			mq_delivered_subid = repalloc(mq_delivered_subid,
										  mq_maxdelivered * sizeof(SubTransactionId));
		}
	}
	mq_delivered[mq_ndelivered].queue_id = queue_id;
	mq_delivered[mq_ndelivered].msg_id = msg_id;
	mq_delivered_subid[mq_ndelivered] = GetCurrentSubTransactionId();
	mq_ndelivered++;
}

/*
 * mq_attempts_xact_callback
 *		A rolled-back transaction hands its deliveries to the worker; a
 *		committed or prepared one forgets them.
 */
static void
mq_attempts_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (mq_ndelivered > 0 && mq_shared != NULL)
			{
				mq_abort_push(MyDatabaseId, mq_delivered, mq_ndelivered);
				mq_wait_wake_deliveries(mq_delivered, mq_ndelivered);
			}
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	mq_ndelivered = 0;
}

/*
 * mq_attempts_subxact_callback
 *		A rolled-back subtransaction undid its deliveries: hand them to the
 *		worker now.  A committed one passes them to its parent.
 */
static void
mq_attempts_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg)
{
	int			i;
	int			first = -1;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* ordered by subid: the subtransaction's deliveries are a suffix */
		for (i = mq_ndelivered - 1; i >= 0 && mq_delivered_subid[i] >= mySubid; i--)
			mq_delivered_subid[i] = parentSubid;
		return;
	}
	if (event != SUBXACT_EVENT_ABORT_SUB || mq_ndelivered == 0)
		return;
	/* deliveries are appended in order, so the aborted ones are a suffix */
	for (i = mq_ndelivered - 1; i >= 0 && mq_delivered_subid[i] >= mySubid; i--)
		first = i;
	if (first < 0)
		return;
	if (mq_shared != NULL)
	{
		mq_abort_push(MyDatabaseId, &mq_delivered[first], mq_ndelivered - first);
		mq_wait_wake_deliveries(&mq_delivered[first], mq_ndelivered - first);
	}
	mq_ndelivered = first;
}

/*
 * mq_attempts_init
 *		Register the transaction callbacks; once per backend.
 */
void
mq_attempts_init(void)
{
	RegisterXactCallback(mq_attempts_xact_callback, NULL);
	RegisterSubXactCallback(mq_attempts_subxact_callback, NULL);
}

/*
 * mq_int8_array
 *		A bigint[] of the msg_ids of d[0..n-1].
 */
static ArrayType *
mq_int8_array(const MqDelivery *d, int n)
{
	Datum	   *ids = palloc(Max(n, 1) * sizeof(Datum));
	int			i;

	for (i = 0; i < n; i++)
		ids[i] = Int64GetDatum(d[i].msg_id);
	return construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

/*
 * mq_delivery_cmp
 *		qsort comparator: by msg_id.
 */
static int
mq_delivery_cmp(const void *a, const void *b)
{
	int64		x = ((const MqDelivery *) a)->msg_id;
	int64		y = ((const MqDelivery *) b)->msg_id;

	return (x > y) - (x < y);
}

/*
 * mq_attempts_apply
 *		Count the deliveries of aborted transactions as attempts (see
 *		mq_stmt_count_attempts for which rows are touched now).  Debts of
 *		messages that still exist but were not touched go back to the ring
 *		for a later pass; debts of messages that are gone are forgotten.
 *		Inside SPI.  Returns the deliveries counted.
 */
uint64
mq_attempts_apply(void)
{
	MqDelivery	d[2000];
	int			n;
	int			i;
	int			k = 0;
	Datum	   *ids;
	Datum	   *cnt;
	Datum		values[2];
	uint64		j;
	uint64		done = 0;
	bool		isnull;

	mq_stmt_exec(&mq_stmt_attempts_lock, NULL, NULL, 0);
	n = mq_abort_take(MyDatabaseId, d, lengthof(d));
	if (n == 0)
		return 0;

	/* one (msg_id, count) per message */
	qsort(d, n, sizeof(MqDelivery), mq_delivery_cmp);
	ids = palloc(n * sizeof(Datum));
	cnt = palloc(n * sizeof(Datum));
	for (i = 0; i < n; i++)
	{
		if (k > 0 && DatumGetInt64(ids[k - 1]) == d[i].msg_id)
		{
			cnt[k - 1] = Int32GetDatum(DatumGetInt32(cnt[k - 1]) + 1);
			continue;
		}
		ids[k] = Int64GetDatum(d[i].msg_id);
		cnt[k] = Int32GetDatum(1);
		k++;
	}
	values[0] = PointerGetDatum(construct_array(ids, k, INT8OID, 8,
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(cnt, k, INT4OID, 4,
												true, TYPALIGN_INT));
	mq_stmt_exec(&mq_stmt_count_attempts, values, NULL, 0);
	if (SPI_processed == (uint64) k)
		return (uint64) n;

	/* drop the counted messages from d; keep the rest */
	{
		int64	   *counted = palloc(Max(SPI_processed, 1) * sizeof(int64));
		uint64		ncounted = SPI_processed;
		int			m = 0;

		for (j = 0; j < ncounted; j++)
			counted[j] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[j],
													 SPI_tuptable->tupdesc, 1, &isnull));
		for (i = 0; i < n; i++)
		{
			bool		seen = false;

			for (j = 0; j < ncounted && !seen; j++)
				seen = (counted[j] == d[i].msg_id);
			if (seen)
				done++;
			else
				d[m++] = d[i];
		}
		n = m;
	}

	/* of the rest, keep the debts of messages that still exist */
	values[0] = PointerGetDatum(mq_int8_array(d, n));
	mq_stmt_exec(&mq_stmt_still_there, values, NULL, 0);
	{
		int			m = 0;

		for (i = 0; i < n; i++)
		{
			bool		exists = false;

			for (j = 0; j < SPI_processed && !exists; j++)
				exists = (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[j],
													  SPI_tuptable->tupdesc, 1, &isnull)) == d[i].msg_id);
			if (exists)
				d[m++] = d[i];
		}
		if (m > 0)
			mq_abort_push_quiet(MyDatabaseId, d, m);
	}
	return done;
}
