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
	int64		n[MQ_NCOUNTERS];
} MqPending;

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
 * mq_wake_deliveries
 *		Wake the waiters of the queues of n deliveries now: the transaction
 *		(or subtransaction) that leased them has rolled back, so they are
 *		ready again at once (locked mode).
 */
static void
mq_wake_deliveries(const MqDelivery *d, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (i == 0 || d[i].queue_id != d[i - 1].queue_id)
			mq_wait_wake(MQ_WAIT_QUEUE, d[i].queue_id);
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
	}
	for (i = 0; i < mq_nwakes; i++)
		mq_wait_wake(mq_wakes[i].kind, mq_wakes[i].id);
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
			{
				mq_abort_push(MyDatabaseId, mq_delivered, mq_ndelivered);
				mq_wake_deliveries(mq_delivered, mq_ndelivered);
			}
			break;
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	mq_npending = 0;
	mq_nwakes = 0;
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

	if (event == SUBXACT_EVENT_COMMIT_SUB || event == SUBXACT_EVENT_ABORT_SUB)
		mq_wake_subxact_end(event == SUBXACT_EVENT_COMMIT_SUB, mySubid, parentSubid);
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
	{
		mq_abort_push(MyDatabaseId, &mq_delivered[first], mq_ndelivered - first);
		mq_wake_deliveries(&mq_delivered[first], mq_ndelivered - first);
	}
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
