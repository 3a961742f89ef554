/*-------------------------------------------------------------------------
 *
 * xact.c
 *	  Wake-ups and worker pokes a transaction owes the rest of the
 *	  system when it commits.
 *
 * During a transaction the hot paths only note, in backend memory, which
 * queues and topics got new ready messages (to wake long-poll waiters),
 * and whether the database's worker must be launched or poked (the outbox
 * relay).  At commit the waiters are woken and the worker poked; at abort
 * the notes are forgotten; PREPARE TRANSACTION hands them to twophase.c,
 * which keeps them in the prepared transaction until COMMIT PREPARED.
 * Nothing here touches a table, so commit stays as cheap as it was.  Counter moves are kept by counter.c, deliveries
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

/*
 * An object whose waiters the transaction wakes at commit.  The list is
 * ordered by subid (entries are appended by the current subtransaction,
 * whose id is the highest alive; an ending subtransaction's entries are a
 * suffix that is dropped or handed to its parent), and a (sub)transaction
 * has at most one entry per object: every operation touches only the
 * entries of one subtransaction level, so a transaction of n
 * subtransactions costs O(n), not O(n^2).
 */
typedef struct MqWakeNote
{
	MqWaitKind	kind;
	int32		id;
	SubTransactionId subid;
} MqWakeNote;

static MqWakeNote *mq_wakes = NULL;
static int	mq_nwakes = 0;
static int	mq_maxwakes = 0;

static bool mq_launch_pending = false;
static bool mq_relay_pending = false;

/*
 * mq_xact_wake_note
 *		Wake the object's long-poll waiters when this transaction commits.
 */
static void
mq_xact_wake_note(MqWaitKind kind, int32 id)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	int			i;

	for (i = mq_nwakes - 1; i >= 0 && mq_wakes[i].subid == subid; i--)
		if (mq_wakes[i].kind == kind && mq_wakes[i].id == id)
			return;
	if (mq_nwakes == mq_maxwakes)
	{
		mq_maxwakes = mq_maxwakes ? mq_maxwakes * 2 : 8;
		if (mq_wakes == NULL)
			mq_wakes = MemoryContextAlloc(TopMemoryContext,
										  mq_maxwakes * sizeof(MqWakeNote));
		else
			mq_wakes = repalloc(mq_wakes, mq_maxwakes * sizeof(MqWakeNote));
	}
	mq_wakes[mq_nwakes].kind = kind;
	mq_wakes[mq_nwakes].id = id;
	mq_wakes[mq_nwakes].subid = subid;
	mq_nwakes++;
}

/*
 * mq_xact_wake
 *		Wake the queue's long-poll waiters when this transaction commits.
 */
void
mq_xact_wake(int32 queue_id)
{
	mq_xact_wake_note(MQ_WAIT_QUEUE, queue_id);
}

/*
 * mq_xact_wake_topic
 *		Wake the topic's fetchers when this transaction commits.
 */
void
mq_xact_wake_topic(int32 topic_id)
{
	mq_xact_wake_note(MQ_WAIT_TOPIC, topic_id);
}

/*
 * mq_wake_subxact_end
 *		A subtransaction ends: its wake-ups (the suffix of the list with
 *		subid >= mySubid) are dropped if it aborted, or become its parent's,
 *		without duplicates, if it committed.
 */
static void
mq_wake_subxact_end(bool commit, SubTransactionId mySubid,
					SubTransactionId parentSubid)
{
	int			first = mq_nwakes;
	int			parent_first;
	int			keep;
	int			i;
	int			j;

	while (first > 0 && mq_wakes[first - 1].subid >= mySubid)
		first--;
	if (!commit || first == mq_nwakes)
	{
		mq_nwakes = first;
		return;
	}
	parent_first = first;
	while (parent_first > 0 && mq_wakes[parent_first - 1].subid == parentSubid)
		parent_first--;
	keep = first;
	for (i = first; i < mq_nwakes; i++)
	{
		for (j = parent_first; j < keep; j++)
			if (mq_wakes[j].kind == mq_wakes[i].kind &&
				mq_wakes[j].id == mq_wakes[i].id)
				break;
		if (j < keep)
			continue;
		mq_wakes[keep] = mq_wakes[i];
		mq_wakes[keep].subid = parentSubid;
		keep++;
	}
	mq_nwakes = keep;
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
	for (i = 0; i < mq_nwakes; i++)
		mq_wait_wake(mq_wakes[i].kind, mq_wakes[i].id);
}

/*
 * mq_xact_effects
 *		Add what this transaction owes at commit (wake-ups, relay poke,
 *		worker launch) to l; PREPARE TRANSACTION keeps them (twophase.c).
 */
void
mq_xact_effects(MqEffectList *l)
{
	Oid			epoch = mq_epoch();
	int			i;

	for (i = 0; i < mq_nwakes; i++)
		(void) mq_effect_add(l, mq_wakes[i].kind == MQ_WAIT_TOPIC ?
							 MQ_EFFECT_WAKE_TOPIC : MQ_EFFECT_WAKE_QUEUE,
							 epoch, mq_wakes[i].id, 0, 0);
	if (mq_relay_pending)
		(void) mq_effect_add(l, MQ_EFFECT_RELAY, epoch, 0, 0, 0);
	if (mq_launch_pending)
		(void) mq_effect_add(l, MQ_EFFECT_LAUNCH, epoch, 0, 0, 0);
}

/*
 * mq_xact_callback
 *		End of a top-level transaction.  At PREPARE the notes were saved
 *		(twophase.c) and are forgotten here.
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
	mq_nwakes = 0;
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
	if (event == SUBXACT_EVENT_COMMIT_SUB || event == SUBXACT_EVENT_ABORT_SUB)
		mq_wake_subxact_end(event == SUBXACT_EVENT_COMMIT_SUB, mySubid, parentSubid);
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
 *		mq._wake(id): wake the waiters of queue id at commit (used by the
 *		SQL-level functions nack, redrive and dead-lettering); a negative id
 *		is the topic -id (the SQL relay).
 */
Datum
mq_sql_wake(PG_FUNCTION_ARGS)
{
	int32		id = PG_GETARG_INT32(0);

	if (id < 0)
		mq_xact_wake_topic(-id);
	else
		mq_xact_wake(id);
	PG_RETURN_VOID();
}
