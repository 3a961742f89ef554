/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The mq launcher and its per-database workers.
 *
 * The launcher is a static background worker registered from _PG_init.
 * It connects to no database; every mq.launcher_interval it lists the
 * databases that accept connections and starts a dynamic worker in each
 * that has none.  A worker whose database lacks the mq extension exits at
 * once and is not retried for a minute; CREATE EXTENSION mq asks the
 * launcher (at commit) to start one right away.
 *
 * A database worker sleeps on its latch and, every mq.naptime or when a
 * backend pokes it, runs one maintenance pass in a transaction: counts the
 * deliveries of aborted transactions as attempts, writes the counters
 * kept in shared memory to mq.queue_counter, and calls mq.maintain()
 * (dead-letters lapsed last attempts and expired messages, expires dedup
 * keys and inbox entries).  An error ends the worker; the postmaster starts
 * it again after a pause.  SIGTERM ends it at the next wait.
 *
 * DROP DATABASE and ALTER DATABASE ... RENAME refuse to run while anyone
 * is connected, so a utility hook stops the worker of the database first.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

PGDLLEXPORT void mq_launcher_main(Datum main_arg);
PGDLLEXPORT void mq_db_worker_main(Datum main_arg);

PG_FUNCTION_INFO_V1(mq_sql_launch);
PG_FUNCTION_INFO_V1(mq_sql_worker_tick);

#define MQ_LAUNCHER_INTERVAL_MS 10000
#define MQ_ABSENT_RECHECK_MS 60000

static ProcessUtility_hook_type mq_prev_utility_hook = NULL;

/* the slot of this database worker, in the worker process */
static MqDbWorker *mq_my_slot = NULL;

static MqStmt mq_stmt_maintain = {
	"SELECT mq.maintain()", 0, {InvalidOid}
};

static MqStmt mq_stmt_relay = {
	"SELECT mq.relay(10000)", 0, {InvalidOid}
};

static MqStmt mq_stmt_recount = {
	"SELECT mq.recount()", 0, {InvalidOid}
};

/*
 * mq_worker_wake
 *		Poke the worker of dboid, if it runs.
 */
void
mq_worker_wake(Oid dboid)
{
	MqDbWorker *w;

	if (mq_shared == NULL)
		return;
	LWLockAcquire(mq_shared->lock, LW_SHARED);
	w = mq_worker_slot(dboid, false);
	if (w != NULL && w->latch != NULL)
		SetLatch(w->latch);
	LWLockRelease(mq_shared->lock);
}

/*
 * mq_worker_request_launch
 *		Ask the launcher to start the worker of dboid now.
 */
void
mq_worker_request_launch(Oid dboid)
{
	MqDbWorker *w;

	if (mq_shared == NULL)
		return;
	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	w = mq_worker_slot(dboid, true);
	if (w != NULL)
		w->not_before = 0;
	if (mq_shared->launcher_latch != NULL)
		SetLatch(mq_shared->launcher_latch);
	LWLockRelease(mq_shared->lock);
}

/*
 * mq_worker_stop
 *		Stop the worker of dboid and keep it stopped for a while; waits up to
 *		10 s for it to exit.  Used before DROP/RENAME DATABASE.
 */
static void
mq_worker_stop(Oid dboid)
{
	MqDbWorker *w;
	pid_t		pid = 0;
	int			i;

	if (mq_shared == NULL || !OidIsValid(dboid))
		return;
	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	w = mq_worker_slot(dboid, false);
	if (w != NULL)
	{
		w->not_before = GetCurrentTimestamp() + 30 * USECS_PER_SEC;
		pid = w->pid;
	}
	LWLockRelease(mq_shared->lock);
	if (pid == 0)
		return;
	kill(pid, SIGTERM);
	for (i = 0; i < 1000; i++)
	{
		bool		gone;

		LWLockAcquire(mq_shared->lock, LW_SHARED);
		gone = (w->pid != pid);
		LWLockRelease(mq_shared->lock);
		if (gone)
			break;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
	}
}

/*
 * mq_db_oid_by_name
 *		OID of a database, or InvalidOid.
 */
static Oid
mq_db_oid_by_name(const char *name)
{
	return name ? get_database_oid(name, true) : InvalidOid;
}

/*
 * mq_utility_hook
 *		Stop our worker before commands that need a database to themselves.
 */
static void
mq_utility_hook(PlannedStmt *pstmt, const char *queryString,
				bool readOnlyTree, ProcessUtilityContext context,
				ParamListInfo params, QueryEnvironment *queryEnv,
				DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *node = pstmt->utilityStmt;

	if (IsA(node, DropdbStmt))
		mq_worker_stop(mq_db_oid_by_name(((DropdbStmt *) node)->dbname));
	else if (IsA(node, RenameStmt) &&
			 ((RenameStmt *) node)->renameType == OBJECT_DATABASE)
		mq_worker_stop(mq_db_oid_by_name(((RenameStmt *) node)->subname));
	else if (IsA(node, CreatedbStmt))
	{
		ListCell   *lc;

		foreach(lc, ((CreatedbStmt *) node)->options)
		{
			DefElem    *opt = lfirst(lc);

			if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
				mq_worker_stop(mq_db_oid_by_name(defGetString(opt)));
		}
	}

	if (mq_prev_utility_hook)
		mq_prev_utility_hook(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * mq_bgw_fill
 *		The registration common to the launcher and the database workers:
 *		shared memory and a database connection, started once recovery is
 *		over, restarted 5 s after a crash.
 */
static void
mq_bgw_fill(BackgroundWorker *bgw, const char *function, const char *type)
{
	memset(bgw, 0, sizeof(*bgw));
	bgw->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw->bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw->bgw_restart_time = 5;
	snprintf(bgw->bgw_library_name, BGW_MAXLEN, "mq");
	snprintf(bgw->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(bgw->bgw_type, BGW_MAXLEN, "%s", type);
}

/*
 * mq_worker_init
 *		Register the launcher and the utility hook; from _PG_init.
 */
void
mq_worker_init(void)
{
	BackgroundWorker bgw;

	mq_prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = mq_utility_hook;

	mq_bgw_fill(&bgw, "mq_launcher_main", "mq launcher");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "mq launcher");
	RegisterBackgroundWorker(&bgw);
}

/*
 * mq_launch_db_worker
 *		Start the worker of one database.  Returns its handle or NULL.
 */
static BackgroundWorkerHandle *
mq_launch_db_worker(Oid dboid)
{
	BackgroundWorker bgw;
	BackgroundWorkerHandle *handle;

	mq_bgw_fill(&bgw, "mq_db_worker_main", "mq worker");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "mq worker for database %u", dboid);
	bgw.bgw_main_arg = ObjectIdGetDatum(dboid);
	bgw.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&bgw, &handle))
		return NULL;
	return handle;
}

/*
 * mq_launcher_scan
 *		Start a worker in every connectable database that has none.
 */
static void
mq_launcher_scan(BackgroundWorkerHandle **handles, Oid *handle_db)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Oid		   *dbs;
	int			ndbs = 0;
	int			maxdbs = 64;
	int			i;
	bool		full = false;
	TimestampTz now = GetCurrentTimestamp();

	dbs = MemoryContextAlloc(TopMemoryContext, maxdbs * sizeof(Oid));

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (!db->datallowconn || db->datistemplate)
			continue;
		if (ndbs == maxdbs)
		{
			maxdbs *= 2;
			dbs = repalloc(dbs, maxdbs * sizeof(Oid));
		}
		dbs[ndbs++] = db->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	/* the registry slots of dropped databases are free again */
	mq_worker_registry_sweep(dbs, ndbs);

	for (i = 0; i < ndbs; i++)
	{
		MqDbWorker *w;
		int			h;
		bool		launch = false;

		/* is our previous launch for this database still alive? */
		for (h = 0; h < mq_shared->max_databases; h++)
			if (handle_db[h] == dbs[i])
				break;
		if (h < mq_shared->max_databases && handles[h] != NULL)
		{
			pid_t		pid;

			if (GetBackgroundWorkerPid(handles[h], &pid) != BGWH_STOPPED)
				continue;
			pfree(handles[h]);
			handles[h] = NULL;
			handle_db[h] = InvalidOid;
		}

		LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
		w = mq_worker_slot(dbs[i], true);
		if (w == NULL)
			full = true;
		if (w != NULL && w->pid == 0 && now >= w->not_before)
		{
			launch = true;
			/* no news within the recheck interval means no mq there */
			w->not_before = now + MQ_ABSENT_RECHECK_MS * (int64) 1000;
		}
		LWLockRelease(mq_shared->lock);
		if (!launch)
			continue;

		for (h = 0; h < mq_shared->max_databases; h++)
			if (handles[h] == NULL)
				break;
		if (h == mq_shared->max_databases)
			break;
		handles[h] = mq_launch_db_worker(dbs[i]);
		handle_db[h] = handles[h] ? dbs[i] : InvalidOid;
		if (handles[h] == NULL)
		{
			ereport(WARNING,
					(errmsg("mq: could not start a worker for database %u", dbs[i]),
					 errhint("Raise max_worker_processes.")));
			LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
			w->not_before = now + 5 * USECS_PER_SEC;
			LWLockRelease(mq_shared->lock);
		}
	}
	if (full)
		ereport(WARNING,
				(errmsg("mq: the worker registry is full (%d databases); some databases get no mq worker",
						mq_shared->max_databases),
				 errdetail("mq.shared_state counts the databases refused."),
				 errhint("Raise mq.max_databases (needs a restart).")));
	pfree(dbs);
}

/*
 * mq_launcher_main
 *		Entry point of the launcher.
 */
void
mq_launcher_main(Datum main_arg)
{
	BackgroundWorkerHandle **handles;
	Oid		   *handle_db;

	handles = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(BackgroundWorkerHandle *) * mq_shared->max_databases);
	handle_db = MemoryContextAllocZero(TopMemoryContext,
									   sizeof(Oid) * mq_shared->max_databases);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	mq_shared->launcher_pid = MyProcPid;
	mq_shared->launcher_latch = MyLatch;
	LWLockRelease(mq_shared->lock);

	while (!ShutdownRequestPending)
	{
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (mq_worker_enabled)
			mq_launcher_scan(handles, handle_db);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 MQ_LAUNCHER_INTERVAL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	mq_shared->launcher_latch = NULL;
	mq_shared->launcher_pid = 0;
	LWLockRelease(mq_shared->lock);
	proc_exit(0);
}

/*
 * mq_db_worker_detach
 *		on_shmem_exit: clear our registry slot.
 */
static void
mq_db_worker_detach(int code, Datum arg)
{
	if (mq_my_slot == NULL)
		return;
	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	if (mq_my_slot->pid == MyProcPid)
	{
		mq_my_slot->pid = 0;
		mq_my_slot->latch = NULL;
	}
	LWLockRelease(mq_shared->lock);
}

/*
 * mq_worker_pass
 *		One maintenance pass, inside a transaction and SPI.
 */
static void
mq_worker_pass(void)
{
	if (!mq_my_slot->recounted)
	{
		/* shared memory is new: pending counts were lost; recount */
		mq_stmt_exec(&mq_stmt_recount, NULL, NULL, 0);
		mq_my_slot->recounted = true;
	}
	mq_attempts_apply();
	mq_counter_flush();
	mq_stmt_exec(&mq_stmt_maintain, NULL, NULL, 0);
}

/*
 * mq_worker_relay
 *		One relay pass, in a transaction of its own so that it commits (and
 *		wakes the consumers) before the slower maintenance runs.  Inside a
 *		transaction and SPI.  Sets our latch when the batch was full.
 */
static void
mq_worker_relay(void)
{
	bool		isnull;

	mq_stmt_exec(&mq_stmt_relay, NULL, NULL, 0);
	if (SPI_processed == 1 &&
		DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									SPI_tuptable->tupdesc, 1, &isnull)) >= 10000)
		SetLatch(MyLatch);
}

/*
 * mq_db_worker_main
 *		Entry point of a database worker.
 */
void
mq_db_worker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	bool		installed;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	mq_my_slot = mq_worker_slot(dboid, true);
	if (mq_my_slot == NULL || (mq_my_slot->pid != 0 && mq_my_slot->pid != MyProcPid))
	{
		LWLockRelease(mq_shared->lock);
		proc_exit(0);			/* another worker serves this database */
	}
	mq_my_slot->pid = MyProcPid;
	mq_my_slot->latch = MyLatch;
	LWLockRelease(mq_shared->lock);
	before_shmem_exit(mq_db_worker_detach, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	while (!ShutdownRequestPending)
	{
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!mq_worker_enabled)
			break;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		/* passes run as the extension's owner, never the bootstrap superuser */
		installed = mq_acl_become_owner();
		if (installed && mq_my_slot->not_before != 0)
		{
			/* we are wanted here: if we stop, come back without delay */
			LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
			mq_my_slot->not_before = 0;
			LWLockRelease(mq_shared->lock);
		}
		if (installed)
		{
			pgstat_report_activity(STATE_RUNNING, "mq relay pass");
			SPI_connect();
			PushActiveSnapshot(GetTransactionSnapshot());
			mq_worker_relay();
			PopActiveSnapshot();
			SPI_finish();
			CommitTransactionCommand();

			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			pgstat_report_activity(STATE_RUNNING, "mq maintenance pass");
			SPI_connect();
			PushActiveSnapshot(GetTransactionSnapshot());
			mq_worker_pass();
			PopActiveSnapshot();
			SPI_finish();
		}
		CommitTransactionCommand();
		pgstat_report_stat(true);
		pgstat_report_activity(STATE_IDLE, NULL);
		if (!installed)
			break;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 mq_naptime_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	proc_exit(0);
}

/*
 * mq_sql_launch
 *		mq._launch_worker(): start this database's worker once the calling
 *		transaction commits (CREATE EXTENSION calls it).
 */
Datum
mq_sql_launch(PG_FUNCTION_ARGS)
{
	mq_xact_launch_on_commit();
	PG_RETURN_VOID();
}

/*
 * mq_sql_worker_tick
 *		mq.run_maintenance(): run one worker pass in the calling session
 *		(for tests, and for servers where the worker is disabled).  Returns
 *		how many aborted deliveries it counted as attempts.
 */
Datum
mq_sql_worker_tick(PG_FUNCTION_ARGS)
{
	uint64		n;

	mq_require_shmem();
	mq_acl_check(MQ_KIND_ALL, 0, "*", MQ_PRIV_MANAGE);
	SPI_connect();
	n = mq_attempts_apply();
	mq_counter_flush();
	mq_stmt_exec(&mq_stmt_maintain, NULL, NULL, 0);
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}
