/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  mq's shared memory: its allocation and its lock.  The structures
 *	  in it belong to the files that use them: wait slots to wait.c,
 *	  counter slots to counter.c, the ring of aborted deliveries to
 *	  attempts.c, the registry of background workers to worker.c.
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
