/*-------------------------------------------------------------------------
 *
 * xact.c
 *	  What a transaction owes the rest of the system when it ends.
 *
 * During a transaction the hot paths only note, in backend memory, which
 * queues got new ready messages (to wake long-poll waiters), how the
 * per-queue counters move, and which messages poll delivered.  At commit
 * the waiters are woken and the counters published; at abort the counter
 * moves are forgotten but the deliveries are handed to the background
 * worker, which counts them as attempts: a consumer that keeps failing in
 * locked mode still drives a poison message to its dead-letter queue.
 * Nothing here touches a table, so commit stays as cheap as it was.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(mq_sql_wake);
PG_FUNCTION_INFO_V1(mq_sql_count);

typedef struct MqPending
{
	int32		queue_id;
	SubTransactionId subid;		/* (sub)transaction that made the moves */
	bool		wake;
	int64		n[MQ_NCOUNTERS];
} MqPending;

static MqPending *mq_pending = NULL;
static int	mq_npending = 0;
static int	mq_maxpending = 0;

static bool mq_launch_pending = false;
static bool mq_relay_pending = false;

static MqDelivery *mq_delivered = NULL;
static SubTransactionId *mq_delivered_subid = NULL;
static int	mq_ndelivered = 0;
static int	mq_maxdelivered = 0;

/*
 * mq_pending_get
 *		The pending entry of queue_id in this transaction, created on demand.
 */
static MqPending *
mq_pending_get(int32 queue_id)
{
	int			i;
	MqPending  *p;
	SubTransactionId subid = GetCurrentSubTransactionId();

	for (i = mq_npending - 1; i >= 0; i--)
		if (mq_pending[i].queue_id == queue_id && mq_pending[i].subid == subid)
			return &mq_pending[i];
	if (mq_npending == mq_maxpending)
	{
		mq_maxpending = mq_maxpending ? mq_maxpending * 2 : 8;
		if (mq_pending == NULL)
			mq_pending = MemoryContextAlloc(TopMemoryContext,
											mq_maxpending * sizeof(MqPending));
		else
			mq_pending = repalloc(mq_pending, mq_maxpending * sizeof(MqPending));
	}
	p = &mq_pending[mq_npending++];
	memset(p, 0, sizeof(*p));
	p->queue_id = queue_id;
	p->subid = subid;
	return p;
}

/*
 * mq_xact_wake
 *		Wake the queue's long-poll waiters when this transaction commits.
 */
void
mq_xact_wake(int32 queue_id)
{
	mq_pending_get(queue_id)->wake = true;
}

/*
 * mq_xact_count
 *		Move the queue's counters when this transaction commits.
 */
void
mq_xact_count(int32 queue_id, MqCounterKind kind, int64 n)
{
	mq_pending_get(queue_id)->n[kind] += n;
}

/*
 * mq_xact_own_counts
 *		This transaction's counter moves so far, one entry per queue, so that
 *		mq.queue_stats shows a transaction its own work.  Returns how many
 *		entries were written to out (at most max).
 */
int
mq_xact_own_counts(MqCounter *out, int max)
{
	int			i;
	int			j;
	int			n = 0;
	int			k;

	for (i = 0; i < mq_npending; i++)
	{
		for (j = 0; j < n; j++)
			if (out[j].queue_id == mq_pending[i].queue_id)
				break;
		if (j == n)
		{
			if (n == max)
				break;
			memset(&out[n], 0, sizeof(MqCounter));
			out[n].dboid = MyDatabaseId;
			out[n].queue_id = mq_pending[i].queue_id;
			n++;
		}
		for (k = 0; k < MQ_NCOUNTERS; k++)
			out[j].n[k] += mq_pending[i].n[k];
	}
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
 * mq_xact_launch_on_commit
 *		Ask the launcher for this database's worker when we commit.
 */
void
mq_xact_launch_on_commit(void)
{
	mq_launch_pending = true;
}

/*
 * mq_xact_relay_on_commit
 *		Wake this database's worker (the outbox relay) when we commit.
 */
void
mq_xact_relay_on_commit(void)
{
	mq_relay_pending = true;
}

/*
 * mq_xact_publish
 *		At commit: publish counters and wake waiters.
 */
static void
mq_xact_publish(void)
{
	int			i;

	if (mq_shared == NULL)
		return;
	for (i = 0; i < mq_npending; i++)
	{
		MqPending  *p = &mq_pending[i];
		int			k;

		for (k = 0; k < MQ_NCOUNTERS; k++)
			if (p->n[k] != 0)
			{
				mq_counter_add(MyDatabaseId, p->queue_id, p->n);
				break;
			}
		if (p->wake)
		{
			MqWaitSlot *slot = mq_wait_slot(MyDatabaseId, p->queue_id);

			pg_atomic_fetch_add_u64(&slot->generation, 1);
			ConditionVariableBroadcast(&slot->cv);
		}
	}
}

/*
 * mq_xact_callback
 *		End of a top-level transaction.
 */
static void
mq_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			mq_xact_publish();
			if (mq_launch_pending)
				mq_worker_request_launch(MyDatabaseId);
			if (mq_relay_pending)
				mq_worker_wake(MyDatabaseId);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (mq_ndelivered > 0 && mq_shared != NULL)
				mq_abort_push(MyDatabaseId, mq_delivered, mq_ndelivered);
			break;
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	mq_npending = 0;
	mq_ndelivered = 0;
	mq_launch_pending = false;
	mq_relay_pending = false;
}

/*
 * mq_subxact_callback
 *		A rolled-back subtransaction undid its deliveries (hand them to the
 *		worker now) and its counter moves (forget them); a committed one
 *		passes both to its parent.
 */
static void
mq_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	int			i;
	int			keep = 0;
	int			first = -1;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (i = 0; i < mq_npending; i++)
			if (mq_pending[i].subid >= mySubid)
				mq_pending[i].subid = parentSubid;
		for (i = 0; i < mq_ndelivered; i++)
			if (mq_delivered_subid[i] >= mySubid)
				mq_delivered_subid[i] = parentSubid;
		return;
	}
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	/* the subtransaction's counter moves and wake-ups are void */
	for (i = 0; i < mq_npending; i++)
		if (mq_pending[i].subid < mySubid)
			mq_pending[keep++] = mq_pending[i];
	mq_npending = keep;
	keep = 0;
	if (mq_ndelivered == 0)
		return;
	/* deliveries are appended in order, so the aborted ones are a suffix */
	for (i = 0; i < mq_ndelivered; i++)
		if (mq_delivered_subid[i] >= mySubid)
		{
			first = i;
			break;
		}
	if (first < 0)
		return;
	keep = first;
	if (mq_shared != NULL)
		mq_abort_push(MyDatabaseId, &mq_delivered[first], mq_ndelivered - first);
	mq_ndelivered = keep;
}

/*
 * mq_xact_init
 *		Register the callbacks; called once per backend from _PG_init.
 */
void
mq_xact_init(void)
{
	RegisterXactCallback(mq_xact_callback, NULL);
	RegisterSubXactCallback(mq_subxact_callback, NULL);
}

/*
 * mq_sql_wake
 *		mq._wake(queue_id): wake the queue's waiters at commit (used by the
 *		SQL-level functions nack, redrive and dead-lettering).
 */
Datum
mq_sql_wake(PG_FUNCTION_ARGS)
{
	mq_xact_wake(PG_GETARG_INT32(0));
	PG_RETURN_VOID();
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
