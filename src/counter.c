/*-------------------------------------------------------------------------
 *
 * counter.c
 *	  The per-queue running totals (sent, acked, dead, purged): every
 *	  place they live, and every move between those places.
 *
 * A transaction notes its counter moves in backend memory (mq_xact_count).
 * When it commits, the moves are added to the queue's slot in shared
 * memory; a rolled-back (sub)transaction's moves are forgotten.  The
 * worker's pass (mq_counter_flush) writes what shared memory holds to
 * mq.queue_counter and takes the same amounts out of shared memory as
 * negative moves of its own transaction, so they leave shared memory only
 * when the write commits: a reader of mq.queue_stats (mq._pending_counters
 * plus the table) never sees a move twice or not at all, and a failed
 * pass loses nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(mq_sql_count);
PG_FUNCTION_INFO_V1(mq_sql_pending_counters);

/* One queue's moves made by one (sub)transaction, not yet committed. */
typedef struct MqCounterMove
{
	int32		queue_id;
	SubTransactionId subid;
	int64		n[MQ_NCOUNTERS];
} MqCounterMove;

static MqCounterMove *mq_moves = NULL;
static int	mq_nmoves = 0;
static int	mq_maxmoves = 0;

/* the most counters mq_counter_flush writes in one pass */
#define MQ_FLUSH_BATCH 1024

static MqStmt mq_stmt_flush_counter = {
	"UPDATE mq.queue_counter SET"
	" total_sent = total_sent OPERATOR(pg_catalog.+) $2,"
	" total_acked = total_acked OPERATOR(pg_catalog.+) $3,"
	" total_dead = total_dead OPERATOR(pg_catalog.+) $4,"
	" total_purged = total_purged OPERATOR(pg_catalog.+) $5,"
	" updated_at = pg_catalog.now()"
	" WHERE queue_id OPERATOR(pg_catalog.=) $1",
	5, {INT4OID, INT8OID, INT8OID, INT8OID, INT8OID}
};

/*
 * mq_counter_find
 *		The counter slot of (dboid, queue_id), created if create is true.
 *		Caller holds mq_shared->lock (exclusive if create).  NULL if absent
 *		or the table is full.
 */
static MqCounterSlot *
mq_counter_find(Oid dboid, int32 queue_id, bool create)
{
	uint32		h = ((uint32) dboid * 2654435761u) ^ (uint32) queue_id;
	int			i;
	int			k;

	for (i = 0; i < MQ_MAX_COUNTERS; i++)
	{
		MqCounterSlot *c = &mq_shared->counters[(h + i) % MQ_MAX_COUNTERS];

		if (c->dboid == dboid && c->queue_id == queue_id)
			return c;
		if (c->dboid == InvalidOid)
		{
			if (!create)
				return NULL;
			for (k = 0; k < MQ_NCOUNTERS; k++)
				pg_atomic_init_u64(&c->n[k], 0);
			c->queue_id = queue_id;
			c->dboid = dboid;
			return c;
		}
	}
	return NULL;
}

/*
 * mq_counter_add
 *		Add committed deltas to a queue's pending counters.  The common case
 *		(the slot exists) takes the lock shared and adds atomically, so
 *		committers do not queue behind each other.
 */
static void
mq_counter_add(Oid dboid, int32 queue_id, const int64 *n)
{
	MqCounterSlot *c;
	int			k;

	LWLockAcquire(mq_shared->lock, LW_SHARED);
	c = mq_counter_find(dboid, queue_id, false);
	if (c == NULL)
	{
		LWLockRelease(mq_shared->lock);
		LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
		c = mq_counter_find(dboid, queue_id, true);
		if (c == NULL)
			mq_shared->counters_lost++;
	}
	if (c != NULL)
	{
		for (k = 0; k < MQ_NCOUNTERS; k++)
			if (n[k] != 0)
				pg_atomic_fetch_add_u64(&c->n[k], (uint64) n[k]);
	}
	LWLockRelease(mq_shared->lock);
}

/*
 * mq_counter_take
 *		Copy out the pending counters of dboid that are not all zero.
 *		Returns the number of entries written to out (at most max).
 */
static int
mq_counter_take(Oid dboid, MqCounter *out, int max)
{
	int			i;
	int			n = 0;

	LWLockAcquire(mq_shared->lock, LW_SHARED);
	for (i = 0; i < MQ_MAX_COUNTERS && n < max; i++)
	{
		MqCounterSlot *c = &mq_shared->counters[i];
		int			k;
		bool		zero = true;

		if (c->dboid != dboid)
			continue;
		out[n].dboid = dboid;
		out[n].queue_id = c->queue_id;
		for (k = 0; k < MQ_NCOUNTERS; k++)
		{
			out[n].n[k] = (int64) pg_atomic_read_u64(&c->n[k]);
			zero = zero && out[n].n[k] == 0;
		}
		if (!zero)
			n++;
	}
	LWLockRelease(mq_shared->lock);
	return n;
}

/*
 * mq_counter_move
 *		The pending moves of queue_id in the current subtransaction,
 *		created on demand.
 */
static MqCounterMove *
mq_counter_move(int32 queue_id)
{
	int			i;
	MqCounterMove *m;
	SubTransactionId subid = GetCurrentSubTransactionId();

	/* the current subtransaction's moves are the suffix (see below) */
	for (i = mq_nmoves - 1; i >= 0 && mq_moves[i].subid == subid; i--)
		if (mq_moves[i].queue_id == queue_id)
			return &mq_moves[i];
	if (mq_nmoves == mq_maxmoves)
	{
		mq_maxmoves = mq_maxmoves ? mq_maxmoves * 2 : 8;
		if (mq_moves == NULL)
			mq_moves = MemoryContextAlloc(TopMemoryContext,
										  mq_maxmoves * sizeof(MqCounterMove));
		else
			mq_moves = repalloc(mq_moves, mq_maxmoves * sizeof(MqCounterMove));
	}
	m = &mq_moves[mq_nmoves++];
	memset(m, 0, sizeof(*m));
	m->queue_id = queue_id;
	m->subid = subid;
	return m;
}

/*
 * mq_xact_count
 *		Move the queue's counters when this transaction commits.
 */
void
mq_xact_count(int32 queue_id, MqCounterKind kind, int64 n)
{
	mq_counter_move(queue_id)->n[kind] += n;
}

/*
 * mq_counter_own
 *		This transaction's counter moves so far, one entry per queue, so that
 *		mq.queue_stats shows a transaction its own work.  Returns how many
 *		entries were written to out (at most max).
 */
static int
mq_counter_own(MqCounter *out, int max)
{
	int			i;
	int			j;
	int			n = 0;
	int			k;

	for (i = 0; i < mq_nmoves; i++)
	{
		for (j = 0; j < n; j++)
			if (out[j].queue_id == mq_moves[i].queue_id)
				break;
		if (j == n)
		{
			if (n == max)
				break;
			memset(&out[n], 0, sizeof(MqCounter));
			out[n].dboid = MyDatabaseId;
			out[n].queue_id = mq_moves[i].queue_id;
			n++;
		}
		for (k = 0; k < MQ_NCOUNTERS; k++)
			out[j].n[k] += mq_moves[i].n[k];
	}
	return n;
}

/*
 * mq_counter_publish
 *		At commit: add the transaction's moves to shared memory.
 */
static void
mq_counter_publish(void)
{
	int			i;
	int			k;

	if (mq_shared == NULL)
		return;
	for (i = 0; i < mq_nmoves; i++)
		for (k = 0; k < MQ_NCOUNTERS; k++)
			if (mq_moves[i].n[k] != 0)
			{
				mq_counter_add(MyDatabaseId, mq_moves[i].queue_id, mq_moves[i].n);
				break;
			}
}

/*
 * mq_counter_xact_callback
 *		End of a top-level transaction: publish the moves at commit, forget
 *		them otherwise.
 */
static void
mq_counter_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			mq_counter_publish();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	mq_nmoves = 0;
}

/*
 * mq_counter_subxact_callback
 *		A committed subtransaction passes its moves to its parent; a
 *		rolled-back one forgets them.
 *
 * The list is ordered by subid: moves are appended by the current
 * subtransaction, whose id is the highest alive, and an ending
 * subtransaction's moves (the suffix with subid >= mySubid) are dropped or
 * merged into its parent's, which precede them.  Each (sub)transaction
 * keeps one entry per queue, and every step touches one level's entries:
 * n sends in n subtransactions cost O(n), not O(n^2).
 */
static void
mq_counter_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	int			first = mq_nmoves;
	int			parent_first;
	int			keep;
	int			i;
	int			j;
	int			k;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	while (first > 0 && mq_moves[first - 1].subid >= mySubid)
		first--;
	if (event == SUBXACT_EVENT_ABORT_SUB || first == mq_nmoves)
	{
		mq_nmoves = first;
		return;
	}
	parent_first = first;
	while (parent_first > 0 && mq_moves[parent_first - 1].subid == parentSubid)
		parent_first--;
	keep = first;
	for (i = first; i < mq_nmoves; i++)
	{
		for (j = parent_first; j < keep; j++)
			if (mq_moves[j].queue_id == mq_moves[i].queue_id)
				break;
		if (j < keep)
		{
			for (k = 0; k < MQ_NCOUNTERS; k++)
				mq_moves[j].n[k] += mq_moves[i].n[k];
			continue;
		}
		mq_moves[keep] = mq_moves[i];
		mq_moves[keep].subid = parentSubid;
		keep++;
	}
	mq_nmoves = keep;
}

/*
 * mq_counter_init
 *		Register the transaction callbacks; once per backend.
 */
void
mq_counter_init(void)
{
	RegisterXactCallback(mq_counter_xact_callback, NULL);
	RegisterSubXactCallback(mq_counter_subxact_callback, NULL);
}

/*
 * mq_counter_flush
 *		Write the counters kept in shared memory to mq.queue_counter.  The
 *		amounts written are taken out of shared memory when the transaction
 *		commits (as negative moves), so a reader of mq.queue_stats never sees
 *		them twice or not at all; a failed pass loses nothing.  Inside SPI.
 */
void
mq_counter_flush(void)
{
	MqCounter  *c = palloc(sizeof(MqCounter) * MQ_FLUSH_BATCH);
	int			n;
	int			i;

	n = mq_counter_take(MyDatabaseId, c, MQ_FLUSH_BATCH);
	for (i = 0; i < n; i++)
	{
		Datum		values[1 + MQ_NCOUNTERS];
		int			k;

		values[0] = Int32GetDatum(c[i].queue_id);
		for (k = 0; k < MQ_NCOUNTERS; k++)
			values[1 + k] = Int64GetDatum(c[i].n[k]);
		mq_stmt_exec(&mq_stmt_flush_counter, values, NULL, 0);
		/* what we wrote leaves shared memory when we commit */
		for (k = 0; k < MQ_NCOUNTERS; k++)
			mq_xact_count(c[i].queue_id, (MqCounterKind) k, -c[i].n[k]);
	}
	pfree(c);
}

/*
 * mq_sql_count
 *		mq._count(queue_id, kind, n): move a counter at commit; kind is
 *		'sent', 'acked', 'dead' or 'purged'.
 */
Datum
mq_sql_count(PG_FUNCTION_ARGS)
{
	int32		queue_id = PG_GETARG_INT32(0);
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int64		n = PG_GETARG_INT64(2);

	if (strcmp(kind, "sent") == 0)
		mq_xact_count(queue_id, MQ_SENT, n);
	else if (strcmp(kind, "acked") == 0)
		mq_xact_count(queue_id, MQ_ACKED, n);
	else if (strcmp(kind, "dead") == 0)
		mq_xact_count(queue_id, MQ_DEAD, n);
	else if (strcmp(kind, "purged") == 0)
		mq_xact_count(queue_id, MQ_PURGED, n);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown counter \"%s\"", kind)));
	PG_RETURN_VOID();
}

/*
 * mq_sql_pending_counters
 *		mq._pending_counters(): counter moves of this database committed but
 *		not yet written to mq.queue_counter, plus the calling transaction's
 *		own.
 */
Datum
mq_sql_pending_counters(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = mq_srf_init(fcinfo, &desc);
	MqCounter  *c;
	int			n = 0;
	int			nown;
	int			i;
	int			j;

	c = palloc(sizeof(MqCounter) * (MQ_MAX_COUNTERS + MQ_FLUSH_BATCH));
	if (mq_shared != NULL)
		n = mq_counter_take(MyDatabaseId, c, MQ_MAX_COUNTERS);
	/* plus this transaction's own moves, merged per queue */
	nown = mq_counter_own(c + n, MQ_FLUSH_BATCH);
	for (i = n; i < n + nown; i++)
	{
		for (j = 0; j < n; j++)
			if (c[j].queue_id == c[i].queue_id)
				break;
		if (j < n)
		{
			int			k;

			for (k = 0; k < MQ_NCOUNTERS; k++)
				c[j].n[k] += c[i].n[k];
			c[i].queue_id = -1;
		}
	}
	for (i = 0; i < n + nown; i++)
	{
		Datum		values[1 + MQ_NCOUNTERS];
		bool		nulls[1 + MQ_NCOUNTERS];
		int			k;

		if (i >= n && c[i].queue_id == -1)
			continue;
		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(c[i].queue_id);
		for (k = 0; k < MQ_NCOUNTERS; k++)
			values[1 + k] = Int64GetDatum(c[i].n[k]);
		tuplestore_putvalues(store, desc, values, nulls);
	}
	return (Datum) 0;
}
