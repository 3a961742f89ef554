/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  mq's shared memory: the ring of attempts made by aborted
 *	  transactions, per-queue counters, and the registry of background
 *	  workers; it also allocates the wait slots of wait.c.
 *
 * Everything here lives as long as the postmaster.  A crash that resets
 * shared memory loses what was not yet written to tables (pending counter
 * deltas, aborted attempts not yet applied); nothing else depends on it.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

MqShared   *mq_shared = NULL;

static void mq_abort_store(Oid dboid, const MqDelivery *d, int n);

static shmem_startup_hook_type mq_prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type mq_prev_shmem_request_hook = NULL;
#endif

/*
 * mq_shmem_size
 *		Bytes of shared memory mq needs.
 */
static Size
mq_shmem_size(void)
{
	return MAXALIGN(sizeof(MqShared));
}

/*
 * mq_shmem_request
 *		Ask for our shared memory and our LWLock.
 */
static void
mq_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (mq_prev_shmem_request_hook)
		mq_prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(mq_shmem_size());
	RequestNamedLWLockTranche("mq", 1);
}

/*
 * mq_shmem_startup
 *		Create or attach to mq's shared state.
 */
static void
mq_shmem_startup(void)
{
	bool		found;

	if (mq_prev_shmem_startup_hook)
		mq_prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	mq_shared = ShmemInitStruct("mq", mq_shmem_size(), &found);
	if (!found)
	{
		memset(mq_shared, 0, sizeof(MqShared));
		mq_shared->lock = &(GetNamedLWLockTranche("mq"))->lock;
		mq_wait_shmem_init(mq_shared->wait);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * mq_shmem_init
 *		Install the hooks; called from _PG_init under
 *		shared_preload_libraries.
 */
void
mq_shmem_init(void)
{
#if PG_VERSION_NUM >= 150000
	mq_prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = mq_shmem_request;
#else
	mq_shmem_request();
#endif
	mq_prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = mq_shmem_startup;
}

/*
 * mq_require_shmem
 *		Error out clearly when mq was not preloaded.
 */
void
mq_require_shmem(void)
{
	if (mq_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("mq must be loaded via shared_preload_libraries"),
				 errhint("Add mq to shared_preload_libraries in postgresql.conf and restart the server.")));
}

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
void
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
 *		Returns the number of entries written to out (at most max).  The
 *		worker takes what it wrote out again by adding negative moves at its
 *		commit.
 */
int
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
 * mq_abort_push
 *		Remember deliveries made by a transaction that is aborting, so the
 *		worker can count them as attempts.  Drops what does not fit.
 */
void
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
void
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
int
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
