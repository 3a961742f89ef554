/*-------------------------------------------------------------------------
 *
 * wait.c
 *	  Long-poll waiting: the wait slots in shared memory, the sleep of
 *	  mq.poll and mq.fetch on them, and the wake-up a commit sends.
 *
 * Each queue and each topic hashes to one of MQ_WAIT_SLOTS slots; a slot
 * is a generation counter and a condition variable.  A waiter reads the
 * generation before each attempt to find work; if the attempt finds
 * nothing it sleeps on the condition variable until the generation moves
 * (a commit made something ready: mq_wait_wake) or its own time is up.  A
 * wake-up that lands between the attempt and the sleep is not lost: the
 * generation has moved, so the waiter does not sleep.  Slots are shared by
 * everything that hashes alike, so a wake-up may be spurious; the waiter
 * then just tries again.
 *
 * Nothing here knows what "ready" means; callers (queue.c, fetch.c) do
 * the attempt, and xact.c calls mq_wait_wake at commit.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"

/*
 * mq_wait_shmem_init
 *		Initialize the wait slots of freshly created shared memory.
 */
void
mq_wait_shmem_init(MqWaitSlot *slots)
{
	int			i;

	for (i = 0; i < MQ_WAIT_SLOTS; i++)
	{
		pg_atomic_init_u64(&slots[i].generation, 0);
		ConditionVariableInit(&slots[i].cv);
	}
}

/*
 * mq_wait_slot
 *		The wait slot of an object (a queue or a topic) of the current
 *		database.
 */
MqWaitSlot *
mq_wait_slot(MqWaitKind kind, int32 id)
{
	uint32		h;

	mq_require_shmem();
	h = (uint32) MyDatabaseId * 2654435761u ^
		((uint32) id * 40503u + (uint32) kind);
	return &mq_shared->wait[h % MQ_WAIT_SLOTS];
}

/*
 * mq_wait_start
 *		Set up a wait of length wait for the function called what: NULL if
 *		wait is zero (the caller makes one attempt and returns).  Waiting
 *		needs a fresh snapshot per attempt, so it is refused under
 *		REPEATABLE READ and SERIALIZABLE.
 */
MqWaiter *
mq_wait_start(MqWaiter *w, const char *what, Interval *wait)
{
	if (wait->time == 0 && wait->day == 0 && wait->month == 0)
		return NULL;
	mq_require_shmem();
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot wait inside a REPEATABLE READ or SERIALIZABLE transaction",
						what),
				 errdetail("The transaction's snapshot would never show new messages."),
				 errhint("Call it with wait => '0', or wait in a READ COMMITTED transaction.")));
	w->slot = NULL;
	w->generation = 0;
	w->deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
														  TimestampTzGetDatum(GetCurrentTimestamp()),
														  IntervalPGetDatum(wait)));
	return w;
}

/*
 * mq_wait_arm
 *		Call before each attempt: note the slot's generation, so that a
 *		wake-up during the attempt keeps the waiter from sleeping.
 */
void
mq_wait_arm(MqWaiter *w, MqWaitKind kind, int32 id)
{
	if (w->slot == NULL)
		w->slot = mq_wait_slot(kind, id);
	w->generation = pg_atomic_read_u64(&w->slot->generation);
}

/*
 * mq_wait_over
 *		True once the wait's deadline has passed: after an attempt that found
 *		nothing, the caller returns empty-handed.
 */
bool
mq_wait_over(MqWaiter *w)
{
	return GetCurrentTimestamp() >= w->deadline;
}

/*
 * mq_wait_sleep
 *		After an attempt that found nothing: sleep until a wake-up, until
 *		(when something becomes ready by itself: a delayed message, a lapsing
 *		lease; DT_NOEND if nothing) or the deadline, whichever comes first.
 *		The caller then makes another attempt.
 */
void
mq_wait_sleep(MqWaiter *w, TimestampTz until)
{
	MqWaitSlot *slot = w->slot;

	until = Min(until, w->deadline);
	ConditionVariablePrepareToSleep(&slot->cv);
	while (pg_atomic_read_u64(&slot->generation) == w->generation)
	{
		/* round up: waking a millisecond early would cost another attempt */
		long		ms = (long) ((until - GetCurrentTimestamp() + 999) / 1000);

		if (ms <= 0)
			break;
		if (ConditionVariableTimedSleep(&slot->cv, ms, PG_WAIT_EXTENSION))
			break;
	}
	ConditionVariableCancelSleep();
	CHECK_FOR_INTERRUPTS();
}

/*
 * mq_wait_wake
 *		Wake every waiter of the object's slot (called by xact.c when a
 *		transaction that made something ready commits).
 */
void
mq_wait_wake(MqWaitKind kind, int32 id)
{
	MqWaitSlot *slot;

	if (mq_shared == NULL)
		return;
	slot = mq_wait_slot(kind, id);
	pg_atomic_fetch_add_u64(&slot->generation, 1);
	ConditionVariableBroadcast(&slot->cv);
}

/*
 * mq_wait_wake_deliveries
 *		Wake the waiters of the queues of n deliveries now: the transaction
 *		or subtransaction that leased them (locked mode) has rolled back, so
 *		they are ready again at once.
 */
void
mq_wait_wake_deliveries(const MqDelivery *d, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (i == 0 || d[i].queue_id != d[i - 1].queue_id)
			mq_wait_wake(MQ_WAIT_QUEUE, d[i].queue_id);
}
