/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  mq's shared memory: its allocation, sizes (GUCs) and locks, the
 *	  registry of background workers, and the count of what did not fit
 *	  (mq.shared_state).  The other structures in it belong to the files
 *	  that use them: wait slots to wait.c, the counter table to counter.c,
 *	  the table of aborted deliveries to attempts.c.
 *
 * Everything here lives as long as the postmaster.  A crash that resets
 * shared memory loses what was not yet written to tables (pending counter
 * deltas, aborted attempts not yet applied); the worker recounts queue
 * depths after a restart.  Entries are keyed by database and by the
 * installation of mq in it (mq_epoch), so that nothing a dropped database
 * or a dropped extension left behind is applied to new objects, and each
 * structure frees its entries once they are settled: none fills up as
 * objects come and go.  Each is bounded by a GUC; when one is full, what
 * did not fit is logged and counted (mq.shared_state), never silent.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(mq_sql_shared_state);

/* the LWLocks of the "mq" tranche: registry, counters, attempts */
#define MQ_SHMEM_NLOCKS 3

MqShared   *mq_shared = NULL;

int			mq_max_counters = 8192;
int			mq_max_attempts_entries = 16384;
int			mq_max_databases = 64;

static shmem_startup_hook_type mq_prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type mq_prev_shmem_request_hook = NULL;
#endif

static const char *const mq_bound_names[MQ_NBOUNDS] = {
	"counters", "aborted_deliveries", "databases"
};
static const char *const mq_bound_gucs[MQ_NBOUNDS] = {
	"mq.max_counters", "mq.max_aborted_deliveries", "mq.max_databases"
};

/*
 * mq_shmem_define_gucs
 *		The sizes of the shared structures; from _PG_init.
 */
void
mq_shmem_define_gucs(void)
{
	DefineCustomIntVariable("mq.max_counters",
							"Queues whose counter moves shared memory holds until the worker writes them.",
							"Entries are freed once written; moves that do not fit are counted in mq.shared_state.",
							&mq_max_counters, 8192, 128, 1024 * 1024,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mq.max_aborted_deliveries",
							"Messages whose aborted deliveries shared memory holds until they are counted as attempts.",
							"Entries are freed once counted; deliveries that do not fit are counted in mq.shared_state.",
							&mq_max_attempts_entries, 16384, 128, 16 * 1024 * 1024,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mq.max_databases",
							"Databases that can have an mq worker at the same time.",
							"Entries of dropped databases are freed; databases refused are counted in mq.shared_state.",
							&mq_max_databases, 64, 1, 8192,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
}

/*
 * mq_shmem_size
 *		Bytes of shared memory mq needs.
 */
static Size
mq_shmem_size(void)
{
	Size		size;

	size = add_size(offsetof(MqShared, workers),
					mul_size(mq_max_databases, sizeof(MqDbWorker)));
	size = add_size(MAXALIGN(size), mq_counter_shmem_size());
	size = add_size(size, mq_attempts_shmem_size());
	return size;
}

/*
 * mq_shmem_request
 *		Ask for our shared memory and our LWLocks.
 */
static void
mq_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (mq_prev_shmem_request_hook)
		mq_prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(mq_shmem_size());
	RequestNamedLWLockTranche("mq", MQ_SHMEM_NLOCKS);
}

/*
 * mq_shmem_startup
 *		Create or attach to mq's shared state.
 */
static void
mq_shmem_startup(void)
{
	bool		found;
	int			i;

	if (mq_prev_shmem_startup_hook)
		mq_prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	mq_shared = ShmemInitStruct("mq",
								add_size(offsetof(MqShared, workers),
										 mul_size(mq_max_databases, sizeof(MqDbWorker))),
								&found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("mq");

		memset(mq_shared, 0, offsetof(MqShared, workers));
		mq_shared->lock = &locks[0].lock;
		mq_shared->counter_lock = &locks[1].lock;
		mq_shared->attempts_lock = &locks[2].lock;
		mq_wait_shmem_init(mq_shared->wait);
		for (i = 0; i < MQ_NBOUNDS; i++)
			pg_atomic_init_u64(&mq_shared->overflows[i], 0);
		pg_atomic_init_u32(&mq_shared->nattempts, 0);
		mq_shared->max_databases = mq_max_databases;
		memset(mq_shared->workers, 0, sizeof(MqDbWorker) * mq_max_databases);
	}
	mq_counter_shmem_init();
	mq_attempts_shmem_init();
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
 * mq_epoch
 *		The installation of mq in this database, as shared memory keys it:
 *		the OID of mq.queue, new with every CREATE EXTENSION mq (queue and
 *		message ids start again at 1 then, and must not meet what the
 *		previous installation left in shared memory).  Cached until mq.queue
 *		is invalidated; in a transaction.
 */
Oid
mq_epoch(void)
{
	return mq_queue_relid_get();
}

/*
 * mq_lock_worker_pass
 *		Serialize the passes that settle shared state of this database (the
 *		worker's and mq.run_maintenance()) until the end of the transaction,
 *		so that no two of them apply the same debts or counter moves.
 */
void
mq_lock_worker_pass(void)
{
	LOCKTAG		tag;

	MQ_SET_LOCKTAG(tag, MQ_LOCK_WORKER_PASS, 0);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * mq_shared_overflow
 *		n items did not fit into the structure of bound: count them for
 *		mq.shared_state and say so.  Safe at commit (WARNING only).
 */
void
mq_shared_overflow(MqSharedBound bound, uint64 n)
{
	pg_atomic_fetch_add_u64(&mq_shared->overflows[bound], n);
	ereport(WARNING,
			(errmsg("mq: shared memory for %s is full; " UINT64_FORMAT " %s not kept",
					mq_bound_names[bound], n,
					bound == MQ_BOUND_COUNTERS ? "counter moves were" :
					bound == MQ_BOUND_ATTEMPTS ? "aborted deliveries were" :
					"databases were"),
			 errdetail("mq.shared_state counts what did not fit."),
			 errhint("Raise %s (needs a restart), or check that the mq worker runs.",
					 mq_bound_gucs[bound])));
}

/*
 * mq_worker_slot
 *		The registry slot of dboid, created if create (counted and logged
 *		when the registry is full).  Caller holds mq_shared->lock
 *		exclusively.  NULL if absent or full.
 */
MqDbWorker *
mq_worker_slot(Oid dboid, bool create)
{
	int			i;
	MqDbWorker *free_slot = NULL;

	for (i = 0; i < mq_shared->max_databases; i++)
	{
		MqDbWorker *w = &mq_shared->workers[i];

		if (w->dboid == dboid)
			return w;
		if (w->dboid == InvalidOid && free_slot == NULL)
			free_slot = w;
	}
	if (!create)
		return NULL;
	if (free_slot == NULL)
	{
		pg_atomic_fetch_add_u64(&mq_shared->overflows[MQ_BOUND_DATABASES], 1);
		return NULL;
	}
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->dboid = dboid;
	return free_slot;
}

/*
 * mq_worker_registry_sweep
 *		Free the registry slots of databases that are not in alive[] (they
 *		were dropped) and have no worker running.  Takes mq_shared->lock.
 */
void
mq_worker_registry_sweep(const Oid *alive, int nalive)
{
	int			i;
	int			j;

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < mq_shared->max_databases; i++)
	{
		MqDbWorker *w = &mq_shared->workers[i];

		if (w->dboid == InvalidOid || w->pid != 0)
			continue;
		for (j = 0; j < nalive; j++)
			if (alive[j] == w->dboid)
				break;
		if (j == nalive)
			memset(w, 0, sizeof(*w));
	}
	LWLockRelease(mq_shared->lock);
}

/*
 * mq_sql_shared_state
 *		mq.shared_state: per bounded structure of shared memory, its entries
 *		in use (server-wide), its capacity and the GUC that sets it, and how
 *		many items did not fit since the server started.
 */
Datum
mq_sql_shared_state(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = mq_srf_init(fcinfo, &desc);
	int			b;

	mq_require_shmem();
	for (b = 0; b < MQ_NBOUNDS; b++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		int64		used = 0;
		int64		capacity = 0;

		if (b == MQ_BOUND_COUNTERS)
		{
			used = mq_counter_entries();
			capacity = mq_max_counters;
		}
		else if (b == MQ_BOUND_ATTEMPTS)
		{
			used = pg_atomic_read_u32(&mq_shared->nattempts);
			capacity = mq_max_attempts_entries;
		}
		else
		{
			int			i;

			LWLockAcquire(mq_shared->lock, LW_SHARED);
			for (i = 0; i < mq_shared->max_databases; i++)
				if (mq_shared->workers[i].dboid != InvalidOid)
					used++;
			LWLockRelease(mq_shared->lock);
			capacity = mq_shared->max_databases;
		}
		values[0] = CStringGetTextDatum(mq_bound_names[b]);
		values[1] = Int64GetDatum(used);
		values[2] = Int64GetDatum(capacity);
		values[3] = CStringGetTextDatum(mq_bound_gucs[b]);
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&mq_shared->overflows[b]));
		tuplestore_putvalues(store, desc, values, nulls);
	}
	return (Datum) 0;
}
