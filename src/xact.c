/*-------------------------------------------------------------------------
 *
 * xact.c
 *	  Wake-ups a transaction owes the rest of the system when it commits.
 *
 * During a transaction the hot paths only note, in backend memory, which
 * queues and topics got new ready messages (to wake long-poll waiters),
 * and whether the database's worker must be launched or poked (the outbox
 * relay).  At commit the waiters are woken and the worker poked; at abort
 * the notes are forgotten.  Nothing here touches a table, so commit stays
 * as cheap as it was.  Counter moves are kept by counter.c, deliveries
 * undone by a rollback by attempts.c; both register their own callbacks
 * from mq_xact_init.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(mq_sql_wake);

/* A queue (or topic, as -topic_id) whose waiters are woken at commit. */
typedef struct MqPendingWake
{
	int32		queue_id;
	SubTransactionId subid;		/* (sub)transaction that asked */
} MqPendingWake;

static MqPendingWake *mq_pending = NULL;
static int	mq_npending = 0;
static int	mq_maxpending = 0;

static bool mq_launch_pending = false;
static bool mq_relay_pending = false;

/*
 * mq_xact_wake
 *		Wake the queue's long-poll waiters when this transaction commits.
 */
void
mq_xact_wake(int32 queue_id)
{
	int			i;
	SubTransactionId subid = GetCurrentSubTransactionId();

	for (i = mq_npending - 1; i >= 0; i--)
		if (mq_pending[i].queue_id == queue_id && mq_pending[i].subid == subid)
			return;
	if (mq_npending == mq_maxpending)
	{
		mq_maxpending = mq_maxpending ? mq_maxpending * 2 : 8;
		if (mq_pending == NULL)
			mq_pending = MemoryContextAlloc(TopMemoryContext,
											mq_maxpending * sizeof(MqPendingWake));
		else
			mq_pending = repalloc(mq_pending, mq_maxpending * sizeof(MqPendingWake));
	}
	mq_pending[mq_npending].queue_id = queue_id;
	mq_pending[mq_npending].subid = subid;
	mq_npending++;
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
 *		At commit: wake waiters.
 */
static void
mq_xact_publish(void)
{
	int			i;

	if (mq_shared == NULL)
		return;
	for (i = 0; i < mq_npending; i++)
	{
		MqWaitSlot *slot = mq_wait_slot(MyDatabaseId, mq_pending[i].queue_id);

		pg_atomic_fetch_add_u64(&slot->generation, 1);
		ConditionVariableBroadcast(&slot->cv);
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
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	mq_npending = 0;
	mq_launch_pending = false;
	mq_relay_pending = false;
}

/*
 * mq_subxact_callback
 *		A rolled-back subtransaction's wake-ups are void; a committed one
 *		passes them to its parent.
 */
static void
mq_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	int			i;
	int			keep = 0;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (i = 0; i < mq_npending; i++)
			if (mq_pending[i].subid >= mySubid)
				mq_pending[i].subid = parentSubid;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		for (i = 0; i < mq_npending; i++)
			if (mq_pending[i].subid < mySubid)
				mq_pending[keep++] = mq_pending[i];
		mq_npending = keep;
	}
}

/*
 * mq_xact_init
 *		Register the callbacks of this file, counter.c and attempts.c;
 *		called once per backend from _PG_init.
 */
void
mq_xact_init(void)
{
	RegisterXactCallback(mq_xact_callback, NULL);
	RegisterSubXactCallback(mq_subxact_callback, NULL);
	mq_counter_init();
	mq_attempts_init();
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
