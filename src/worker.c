/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The mq launcher, the per-database workers, and the utility hook that
 *	  keeps them out of the way of DROP/RENAME/COPY DATABASE.
 *
 * The launcher is a static background worker registered from _PG_init.  It
 * connects to no database.  It keeps, in its own memory, what it knows of
 * every connectable database: unknown, probing, without mq, or with mq.
 * Databases with mq have a slot in the shared registry (mq_shared->workers);
 * CREATE EXTENSION mq creates it at commit and wakes the launcher.  A
 * database the launcher has not seen before (new since it started, or
 * every database when the server starts) is probed by a short-lived worker,
 * one probe at a time: the probe exits at once if mq is not installed, and
 * becomes the database's worker if it is.  So workers run only where mq is,
 * and probing never holds more than one worker slot for a moment.
 *
 * The launcher holds the only registration of each database's worker (a
 * dynamic worker that the postmaster never restarts by itself) and starts a
 * new one only once the old one has stopped, after a backoff that grows
 * while workers exit soon after starting.  A database that is dropped loses
 * its slot; one whose worker finds mq gone (DROP EXTENSION) too.
 *
 * A database worker first sets the settings it depends on, whatever the
 * database and role settings say (mq_worker_set_gucs).  It then sleeps on
 * its latch and, every mq.naptime or when a backend pokes it, runs a pass
 * of two steps, each a transaction started in mq_pass_step: the relay
 * (mq.relay) and the maintenance (aborted deliveries counted as attempts,
 * counters written, mq.recount once per shared memory, mq.maintain).  An
 * error in a step is caught there: it is logged once with its context, the
 * transaction is aborted, the failure is recorded for mq.worker_status, and
 * the next pass waits MQ_BACKOFF_BASE_MS, doubled for each failure in a row
 * up to mq.worker_backoff_max.  SIGTERM (pg_terminate_backend, DROP
 * DATABASE) ends the worker at the next CHECK_FOR_INTERRUPTS, in the
 * middle of a pass too.
 *
 * DROP DATABASE, ALTER DATABASE ... RENAME and CREATE DATABASE ... TEMPLATE
 * refuse to run while anyone is connected to the database.  The utility
 * hook checks the permissions the command will check; only if they pass
 * does it hold the database's slot (no worker is started while held), stop
 * its worker and wait for it to exit.  The hold ends when the command ends,
 * and a worker is started again if the database is still there.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

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
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

PGDLLEXPORT void mq_launcher_main(Datum main_arg);
PGDLLEXPORT void mq_db_worker_main(Datum main_arg);

PG_FUNCTION_INFO_V1(mq_sql_launch);
PG_FUNCTION_INFO_V1(mq_sql_worker_tick);
PG_FUNCTION_INFO_V1(mq_sql_worker_status);

/* the launcher looks at pg_database at least this often */
#define MQ_LAUNCHER_INTERVAL_MS 10000
/* a worker that exits sooner than this after its start counts as failing */
#define MQ_WORKER_QUICK_EXIT_MS 30000
/* rows one relay step moves at most */
#define MQ_RELAY_BATCH 10000
/* the hook re-checks whether a stopped worker has exited this often */
#define MQ_STOP_POLL_MS 10
/* bgw_extra of a probe */
#define MQ_PROBE_MARK "probe"

/* in a worker: version of the installed extension (major*100 + minor) */
int			mq_installed_version = 0;

static ProcessUtility_hook_type mq_prev_utility_hook = NULL;

/* the slot of this database worker, in the worker process */
static MqDbWorker *mq_my_slot = NULL;

/* a long-lived context for what a caught error leaves behind */
static MemoryContext mq_worker_cxt = NULL;

/* in a backend: has it registered mq_release_holds at exit? */
static bool mq_hold_exit_registered = false;

static MqStmt mq_stmt_maintain = {
	"SELECT mq.maintain()", 0, {InvalidOid}
};

static MqStmt mq_stmt_relay = {
	"SELECT mq.relay($1)", 1, {INT4OID}
};

static MqStmt mq_stmt_recount = {
	"SELECT mq.recount()", 0, {InvalidOid}
};


static MqStmt mq_stmt_version = {
	"SELECT e.extversion FROM pg_catalog.pg_extension e"
	" WHERE e.extname OPERATOR(pg_catalog.=) 'mq'",
	0, {InvalidOid}
};

/*
 * mq_worker_slot_free
 *		Give a slot back.  Caller holds mq_shared->lock exclusively.
 */
static void
mq_worker_slot_free(MqDbWorker *w)
{
	memset(w, 0, sizeof(*w));
	w->dboid = InvalidOid;
}

/*
 * mq_wake_launcher
 *		Set the launcher's latch.  Caller holds mq_shared->lock.
 */
static void
mq_wake_launcher(void)
{
	if (mq_shared->launcher_latch != NULL)
		SetLatch(mq_shared->launcher_latch);
}

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
 *		mq is installed in dboid (CREATE EXTENSION committed): mark its slot
 *		wanted and ask the launcher to start its worker now.  A full
 *		registry is reported, not ignored.
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
	{
		w->wanted = true;
		w->launch_requested = true;
		if (w->latch != NULL)
			SetLatch(w->latch);
	}
	mq_wake_launcher();
	LWLockRelease(mq_shared->lock);
	if (w == NULL)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("mq: no background worker for database %u: %d databases with mq already have one",
						dboid, mq_shared->max_databases),
				 errdetail("mq.shared_state counts the databases refused."),
				 errhint("Raise mq.max_databases (needs a restart); meanwhile run mq.relay() and mq.run_maintenance() by hand.")));
}

/* ----------------------------------------------------------------
 * The utility hook: hold a database's worker off while a command needs the
 * database to itself.
 * ----------------------------------------------------------------
 */

/*
 * mq_release_holds
 *		before_shmem_exit of a backend that held a slot: let go of every
 *		hold of ours (a FATAL error skips the hook's own clean-up).
 */
static void
mq_release_holds(int code, Datum arg)
{
	int			i;

	if (mq_shared == NULL)
		return;
	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < mq_shared->max_databases; i++)
		if (mq_shared->workers[i].dboid != InvalidOid &&
			mq_shared->workers[i].held_by == MyProcPid)
			mq_shared->workers[i].held_by = 0;
	mq_wake_launcher();
	LWLockRelease(mq_shared->lock);
}

/*
 * mq_hold_slot
 *		Hold dboid's slot: no worker is started in it while held.  The slot
 *		is created if need be, so that a probe that is connecting cannot
 *		become the worker meanwhile.  Returns whether a hold was taken.
 */
static bool
mq_hold_slot(Oid dboid)
{
	MqDbWorker *w;

	if (!mq_hold_exit_registered)
	{
		before_shmem_exit(mq_release_holds, (Datum) 0);
		mq_hold_exit_registered = true;
	}
	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	w = mq_worker_slot(dboid, true);
	if (w != NULL)
	{
		w->held_by = MyProcPid;
		if (w->wanted)
			w->status.state = MQ_WS_HELD;
	}
	LWLockRelease(mq_shared->lock);
	return w != NULL;
}

/*
 * mq_stop_held_worker
 *		Stop the worker of a held slot and wait, as long as it takes but
 *		interruptibly, for it to exit (SIGTERM ends it at its next
 *		CHECK_FOR_INTERRUPTS, in the middle of a pass too).
 */
static void
mq_stop_held_worker(Oid dboid)
{
	for (;;)
	{
		MqDbWorker *w;
		pid_t		pid = 0;

		LWLockAcquire(mq_shared->lock, LW_SHARED);
		w = mq_worker_slot(dboid, false);
		if (w != NULL)
			pid = w->pid;
		LWLockRelease(mq_shared->lock);
		if (pid == 0)
			break;
		kill(pid, SIGTERM);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 MQ_STOP_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * mq_release_worker
 *		End our hold of dboid's slot; the launcher starts its worker again
 *		if the database (still) has mq.  A slot that was only created for
 *		the hold is given back, and so is that of a database we dropped
 *		(should the drop not commit after all, the launcher probes the
 *		database again).
 */
static void
mq_release_worker(Oid dboid, bool dropped)
{
	MqDbWorker *w;

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	w = mq_worker_slot(dboid, false);
	if (w != NULL && w->held_by == MyProcPid)
	{
		w->held_by = 0;
		if (w->status.state == MQ_WS_HELD)
			w->status.state = MQ_WS_STOPPED;
		if ((dropped || !w->wanted) && w->pid == 0)
			mq_worker_slot_free(w);
	}
	mq_wake_launcher();
	LWLockRelease(mq_shared->lock);
}

/*
 * mq_own_database
 *		Does the current user own the database (or is superuser)?
 */
static bool
mq_own_database(Oid dboid)
{
#if PG_VERSION_NUM >= 160000
	return object_ownercheck(DatabaseRelationId, dboid, GetUserId());
#else
	return pg_database_ownercheck(dboid, GetUserId());
#endif
}

/*
 * mq_db_is_template
 *		pg_database.datistemplate of dboid.
 */
static bool
mq_db_is_template(Oid dboid)
{
	HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	bool		result = false;

	if (HeapTupleIsValid(tup))
	{
		result = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
		ReleaseSysCache(tup);
	}
	return result;
}

/*
 * mq_utility_target
 *		The database whose worker must be out of the way for this command
 *		to run, or InvalidOid: none, or the command will fail its own
 *		checks anyway (permissions, the current database, a name that is
 *		taken), in which case the worker is left alone.  These are the
 *		checks PostgreSQL makes before it waits for other sessions to
 *		leave the database.
 */
static Oid
mq_utility_target(Node *node)
{
	if (IsA(node, DropdbStmt))
	{
		DropdbStmt *stmt = (DropdbStmt *) node;
		Oid			dboid = get_database_oid(stmt->dbname, true);

		if (!OidIsValid(dboid) || dboid == MyDatabaseId ||
			!mq_own_database(dboid) || mq_db_is_template(dboid))
			return InvalidOid;
		return dboid;
	}
	if (IsA(node, RenameStmt) &&
		((RenameStmt *) node)->renameType == OBJECT_DATABASE)
	{
		RenameStmt *stmt = (RenameStmt *) node;
		Oid			dboid = get_database_oid(stmt->subname, true);

		if (!OidIsValid(dboid) || dboid == MyDatabaseId ||
			!mq_own_database(dboid) || !have_createdb_privilege() ||
			OidIsValid(get_database_oid(stmt->newname, true)))
			return InvalidOid;
		return dboid;
	}
	if (IsA(node, CreatedbStmt))
	{
		CreatedbStmt *stmt = (CreatedbStmt *) node;
		ListCell   *lc;
		Oid			dboid = InvalidOid;

		foreach(lc, stmt->options)
		{
			DefElem    *opt = lfirst(lc);

			if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
				dboid = get_database_oid(defGetString(opt), true);
		}
		/* (a database made a template keeps the worker it had) */
		if (!OidIsValid(dboid) || dboid == MyDatabaseId ||
			!have_createdb_privilege() ||
			!(mq_db_is_template(dboid) || mq_own_database(dboid)) ||
			OidIsValid(get_database_oid(stmt->dbname, true)))
			return InvalidOid;
		return dboid;
	}
	return InvalidOid;
}

/*
 * mq_utility_hook
 *		Hold off the worker of a database that DROP DATABASE, ALTER
 *		DATABASE ... RENAME or CREATE DATABASE ... TEMPLATE is going to
 *		need to itself, for as long as the command runs.
 */
static void
mq_utility_hook(PlannedStmt *pstmt, const char *queryString,
				bool readOnlyTree, ProcessUtilityContext context,
				ParamListInfo params, QueryEnvironment *queryEnv,
				DestReceiver *dest, QueryCompletion *qc)
{
	volatile Oid target = InvalidOid;
	volatile bool held = false;
	volatile bool done = false;

	if (mq_shared != NULL)
		target = mq_utility_target(pstmt->utilityStmt);

	PG_TRY();
	{
		if (OidIsValid(target) && mq_hold_slot(target))
		{
			held = true;
			mq_stop_held_worker(target);
		}
		if (mq_prev_utility_hook)
			mq_prev_utility_hook(pstmt, queryString, readOnlyTree, context,
								 params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
		done = true;
	}
	PG_FINALLY();
	{
		if (held)
			mq_release_worker(target,
							  done && IsA(pstmt->utilityStmt, DropdbStmt));
	}
	PG_END_TRY();
}

/* ----------------------------------------------------------------
 * The launcher
 * ----------------------------------------------------------------
 */

/* what the launcher knows of a database */
typedef enum MqDbState
{
	MQ_DB_UNKNOWN,				/* not probed yet */
	MQ_DB_PROBING,				/* a probe runs (handle) */
	MQ_DB_ABSENT,				/* no mq there */
	MQ_DB_PRESENT				/* mq there: its worker runs or will */
} MqDbState;

typedef struct MqLauncherDb
{
	Oid			dboid;
	MqDbState	state;
	bool		seen;			/* in the latest look at pg_database */
	bool		connectable;	/* datallowconn and not a template */
	BackgroundWorkerHandle *handle; /* our registration, if any */
	TimestampTz launched_at;
	TimestampTz next_launch;	/* backoff: no launch before */
	int			failures;		/* quick exits or refused launches in a row */
} MqLauncherDb;

static MqLauncherDb *mq_ldbs = NULL;
static int	mq_nldbs = 0;
static int	mq_maxldbs = 0;

/*
 * mq_bgw_fill
 *		The registration common to the launcher and the database workers:
 *		shared memory and a database connection, started once recovery is
 *		over.
 */
static void
mq_bgw_fill(BackgroundWorker *bgw, const char *function, const char *type)
{
	memset(bgw, 0, sizeof(*bgw));
	bgw->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw->bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw->bgw_restart_time = BGW_NEVER_RESTART;
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
	/* the postmaster restarts the launcher (only) 5 s after it fails */
	bgw.bgw_restart_time = 5;
	snprintf(bgw.bgw_name, BGW_MAXLEN, "mq launcher");
	RegisterBackgroundWorker(&bgw);
}

/*
 * mq_backoff_ms
 *		Delay after the n-th failure in a row: MQ_BACKOFF_BASE_MS doubled
 *		for each, at most mq.worker_backoff_max.
 */
static int64
mq_backoff_ms(int n)
{
	int64		ms = MQ_BACKOFF_BASE_MS;

	while (--n > 0 && ms < mq_worker_backoff_max_ms)
		ms *= 2;
	return Min(ms, (int64) mq_worker_backoff_max_ms);
}

/*
 * mq_launcher_db
 *		The launcher's entry of dboid, added (unknown) if new.
 */
static MqLauncherDb *
mq_launcher_db(Oid dboid)
{
	int			i;
	MqLauncherDb *d;

	for (i = 0; i < mq_nldbs; i++)
		if (mq_ldbs[i].dboid == dboid)
			return &mq_ldbs[i];
	if (mq_nldbs == mq_maxldbs)
	{
		mq_maxldbs = Max(64, mq_maxldbs * 2);
		if (mq_ldbs == NULL)
			mq_ldbs = MemoryContextAlloc(TopMemoryContext,
										 mq_maxldbs * sizeof(MqLauncherDb));
		else
			mq_ldbs = repalloc(mq_ldbs, mq_maxldbs * sizeof(MqLauncherDb));
	}
	d = &mq_ldbs[mq_nldbs++];
	memset(d, 0, sizeof(*d));
	d->dboid = dboid;
	d->state = MQ_DB_UNKNOWN;
	return d;
}

/*
 * mq_launcher_look
 *		Bring the list of databases up to date with pg_database: new ones
 *		are unknown, dropped ones are forgotten (once their worker is gone).
 */
static void
mq_launcher_look(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	int			i;
	int			n = 0;

	for (i = 0; i < mq_nldbs; i++)
		mq_ldbs[i].seen = false;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MqLauncherDb *d = mq_launcher_db(db->oid);

		d->seen = true;
		d->connectable = db->datallowconn && !db->datistemplate;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	/* the registry slots of dropped databases are free again */
	{
		Oid		   *alive = palloc(sizeof(Oid) * Max(mq_nldbs, 1));
		int			nalive = 0;

		for (i = 0; i < mq_nldbs; i++)
			if (mq_ldbs[i].seen)
				alive[nalive++] = mq_ldbs[i].dboid;
		mq_worker_registry_sweep(alive, nalive);
		pfree(alive);
	}

	/* forget dropped databases whose worker is gone */
	for (i = 0; i < mq_nldbs; i++)
		if (mq_ldbs[i].seen || mq_ldbs[i].handle != NULL)
			mq_ldbs[n++] = mq_ldbs[i];
	mq_nldbs = n;
}

/*
 * mq_launcher_reap
 *		Note the workers and probes that have stopped: a probe that left no
 *		wanted slot found no mq; a worker whose slot is gone found mq
 *		dropped; any other stop is relaunched after a backoff that grows
 *		while workers exit soon after they start.
 */
static void
mq_launcher_reap(TimestampTz now)
{
	int			i;

	for (i = 0; i < mq_nldbs; i++)
	{
		MqLauncherDb *d = &mq_ldbs[i];
		MqDbWorker *w;
		pid_t		pid;
		bool		wanted;

		if (d->handle == NULL ||
			GetBackgroundWorkerPid(d->handle, &pid) != BGWH_STOPPED)
			continue;
		pfree(d->handle);
		d->handle = NULL;

		LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
		w = mq_worker_slot(d->dboid, false);
		wanted = (w != NULL && w->wanted);
		if (!wanted)
			d->state = MQ_DB_ABSENT;
		else
		{
			bool		quick = now - d->launched_at <
				MQ_WORKER_QUICK_EXIT_MS * (int64) 1000;

			d->state = MQ_DB_PRESENT;
			d->failures = quick ? d->failures + 1 : 0;
			d->next_launch = d->failures > 0 ?
				now + mq_backoff_ms(d->failures) * 1000 : now;
			w->status.state = w->held_by ? MQ_WS_HELD : MQ_WS_STOPPED;
			w->status.next_retry = d->next_launch;
		}
		LWLockRelease(mq_shared->lock);
	}
}

/*
 * mq_launcher_sync
 *		Reconcile the registry with what the launcher knows: give back the
 *		slots of dropped databases and of databases without mq; take note
 *		of databases that CREATE EXTENSION marked wanted.
 */
static void
mq_launcher_sync(void)
{
	int			i;

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	for (i = 0; i < mq_shared->max_databases; i++)
	{
		MqDbWorker *w = &mq_shared->workers[i];
		MqLauncherDb *d = NULL;
		int			j;

		if (w->dboid == InvalidOid)
			continue;
		for (j = 0; j < mq_nldbs; j++)
			if (mq_ldbs[j].dboid == w->dboid)
				d = &mq_ldbs[j];
		if (w->pid == 0 && w->held_by == 0 && (d == NULL || d->handle == NULL) &&
			(d == NULL || !w->wanted))
		{
			/* dropped, or mq gone, or only held for a while */
			mq_worker_slot_free(w);
			continue;
		}
		if (d == NULL)
			continue;
		if (w->wanted && d->state == MQ_DB_PROBING && w->pid != 0)
		{
			/* the probe found mq and became the worker: probe the next */
			d->state = MQ_DB_PRESENT;
			d->failures = 0;
		}
		if (w->wanted && d->state != MQ_DB_PRESENT && d->state != MQ_DB_PROBING)
		{
			d->state = MQ_DB_PRESENT;
			d->failures = 0;
			d->next_launch = 0;
		}
		if (w->launch_requested && d->handle == NULL)
			d->next_launch = 0;
	}
	/* a database with mq whose slot went away: look again */
	for (i = 0; i < mq_nldbs; i++)
		if (mq_ldbs[i].state == MQ_DB_PRESENT && mq_ldbs[i].handle == NULL &&
			mq_worker_slot(mq_ldbs[i].dboid, false) == NULL)
			mq_ldbs[i].state = MQ_DB_UNKNOWN;
	LWLockRelease(mq_shared->lock);
}

/*
 * mq_launch_db_worker
 *		Register the worker (or probe) of one database; the registration is
 *		ours alone.  Returns false when no background worker slot is free.
 */
static bool
mq_launch_db_worker(MqLauncherDb *d, bool probe, TimestampTz now)
{
	BackgroundWorker bgw;

	mq_bgw_fill(&bgw, "mq_db_worker_main", "mq worker");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "mq %s for database %u",
			 probe ? "probe" : "worker", d->dboid);
	bgw.bgw_main_arg = ObjectIdGetDatum(d->dboid);
	bgw.bgw_notify_pid = MyProcPid;
	if (probe)
		snprintf(bgw.bgw_extra, BGW_EXTRALEN, "%s", MQ_PROBE_MARK);
	if (!RegisterDynamicBackgroundWorker(&bgw, &d->handle))
	{
		d->handle = NULL;
		return false;
	}
	d->launched_at = now;
	return true;
}

/*
 * mq_launcher_cycle
 *		One round of the launcher: look, reap, reconcile, then start the
 *		workers that are due and at most one probe.  Returns how long to
 *		sleep, in ms.
 */
static long
mq_launcher_cycle(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz wake = now + MQ_LAUNCHER_INTERVAL_MS * (int64) 1000;
	bool		probing = false;
	int			i;

	mq_launcher_look();
	mq_launcher_reap(now);
	mq_launcher_sync();

	/* one probe at a time; one that hangs (connecting) holds back others
	 * only for a launcher interval */
	for (i = 0; i < mq_nldbs; i++)
		probing = probing || (mq_ldbs[i].state == MQ_DB_PROBING &&
							  now - mq_ldbs[i].launched_at <
							  MQ_LAUNCHER_INTERVAL_MS * (int64) 1000);

	for (i = 0; i < mq_nldbs; i++)
	{
		MqLauncherDb *d = &mq_ldbs[i];
		MqDbWorker *w;
		bool		launch = false;
		bool		probe = false;

		if (d->handle != NULL || !d->seen || !d->connectable)
			continue;
		if (d->next_launch > now)
		{
			wake = Min(wake, d->next_launch);
			continue;
		}
		LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
		w = mq_worker_slot(d->dboid, false);
		if (w != NULL && w->held_by != 0)
			;					/* a command needs the database to itself */
		else if (d->state == MQ_DB_PRESENT && w != NULL && w->pid == 0)
		{
			launch = true;
			w->launch_requested = false;
		}
		else if (d->state == MQ_DB_UNKNOWN && !probing)
			launch = probe = true;
		LWLockRelease(mq_shared->lock);
		if (!launch)
			continue;

		if (mq_launch_db_worker(d, probe, now))
		{
			if (probe)
			{
				d->state = MQ_DB_PROBING;
				probing = true;
			}
			else
			{
				LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
				w = mq_worker_slot(d->dboid, false);
				if (w != NULL)
					w->status.bounds &= ~MQ_WBOUND_BGW_SLOTS;
				LWLockRelease(mq_shared->lock);
			}
			continue;
		}

		/* no background worker slot: say so once per backoff step */
		d->failures++;
		d->next_launch = now + mq_backoff_ms(d->failures) * 1000;
		wake = Min(wake, d->next_launch);
		LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
		w = mq_worker_slot(d->dboid, false);
		if (w != NULL)
		{
			w->status.bounds |= MQ_WBOUND_BGW_SLOTS;
			w->status.next_retry = d->next_launch;
		}
		LWLockRelease(mq_shared->lock);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("mq: could not start a %s for database %u: no background worker slot is free",
						probe ? "probe" : "worker", d->dboid),
				 errdetail("Trying again in %d ms.",
						   (int) mq_backoff_ms(d->failures)),
				 errhint("Raise max_worker_processes.")));
	}
	return (long) Max((wake - now) / 1000, 1);
}

/*
 * mq_launcher_main
 *		Entry point of the launcher.
 */
void
mq_launcher_main(Datum main_arg)
{
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
		long		sleep_ms = MQ_LAUNCHER_INTERVAL_MS;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (mq_worker_enabled)
			sleep_ms = mq_launcher_cycle();

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	mq_shared->launcher_latch = NULL;
	mq_shared->launcher_pid = 0;
	LWLockRelease(mq_shared->lock);
	proc_exit(0);
}

/* ----------------------------------------------------------------
 * The database worker
 * ----------------------------------------------------------------
 */

/* the steps of a pass, each a transaction of its own */
typedef enum MqPassStep
{
	MQ_STEP_RELAY,
	MQ_STEP_MAINTENANCE
} MqPassStep;

static const char *const mq_step_names[] = {
	[MQ_STEP_RELAY] = "relay",
	[MQ_STEP_MAINTENANCE] = "maintenance"
};

/*
 * The settings a worker runs with, whatever ALTER DATABASE / ALTER ROLE ...
 * SET say: its statements must not time out, see another isolation level,
 * be read-only, skip triggers, resolve names elsewhere, stop the process on
 * an error, parse literals differently, create segments elsewhere, or take
 * parallel workers from the rest of the server.  Set at PGC_S_SESSION: above
 * database and role settings and the configuration file, while the SET
 * clauses of mq's functions still apply.
 */
static const struct
{
	const char *name;
	const char *value;
}			mq_worker_gucs[] =
{
	{"default_transaction_isolation", "read committed"},
	{"default_transaction_read_only", "off"},
	{"default_transaction_deferrable", "off"},
	{"statement_timeout", "0"},
	{"lock_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
#if PG_VERSION_NUM >= 140000
	{"idle_session_timeout", "0"},
#endif
#if PG_VERSION_NUM >= 170000
	{"transaction_timeout", "0"},
#endif
	{"search_path", "pg_catalog, pg_temp"},
	{"session_replication_role", "origin"},
	{"exit_on_error", "off"},
	{"standard_conforming_strings", "on"},
	{"DateStyle", "ISO, MDY"},
	{"IntervalStyle", "postgres"},
	{"default_tablespace", ""},
	{"default_table_access_method", "heap"},
	{"temp_file_limit", "-1"},
	{"max_parallel_workers_per_gather", "0"},
#if PG_VERSION_NUM >= 160000
	{"debug_parallel_query", "off"},
#else
	{"force_parallel_mode", "off"},
#endif
	{"application_name", "mq worker"},
};

/*
 * mq_worker_set_gucs
 *		Set mq_worker_gucs, and make commits synchronous if the database or
 *		role asked for off or local: a relay step deletes outbox rows that
 *		the application committed synchronously.  A role set with ALTER ...
 *		SET role is dropped: the worker runs as the role it connected as.
 */
static void
mq_worker_set_gucs(void)
{
	int			i;
	const char *sc;

	for (i = 0; i < lengthof(mq_worker_gucs); i++)
		SetConfigOption(mq_worker_gucs[i].name, mq_worker_gucs[i].value,
						PGC_SUSET, PGC_S_SESSION);
	sc = GetConfigOption("synchronous_commit", false, false);
	if (sc != NULL && (strcmp(sc, "off") == 0 || strcmp(sc, "local") == 0))
		SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_SESSION);
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
		mq_my_slot->status.state = mq_my_slot->held_by ? MQ_WS_HELD : MQ_WS_STOPPED;
		mq_my_slot->status.started_at = 0;
		mq_my_slot->status.pass_started = 0;
	}
	mq_wake_launcher();
	LWLockRelease(mq_shared->lock);
}

/*
 * mq_db_worker_attach
 *		Become the worker of dboid: take its slot (a probe creates it and
 *		marks it wanted).  Returns false if another worker serves the
 *		database, a command holds it, or the registry is full.
 */
static bool
mq_db_worker_attach(Oid dboid, bool probe)
{
	MqDbWorker *w;
	bool		ok = false;

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	w = mq_worker_slot(dboid, probe);
	if (w != NULL)
	{
		if (probe)
			w->wanted = true;
		if (w->pid == 0 && w->held_by == 0)
		{
			w->pid = MyProcPid;
			w->latch = MyLatch;
			w->status.state = MQ_WS_STARTING;
			w->status.started_at = GetCurrentTimestamp();
			w->status.launches++;
			mq_my_slot = w;
			ok = true;
		}
	}
	/* a probe that became the worker frees the launcher's probe turn */
	mq_wake_launcher();
	LWLockRelease(mq_shared->lock);
	if (w == NULL && probe)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("mq: no background worker for database %u: %d databases with mq already have one",
						dboid, mq_shared->max_databases)));
	return ok;
}

/*
 * mq_worker_set_state
 *		Publish the worker's state for mq.worker_status.
 */
static void
mq_worker_set_state(MqWorkerState state)
{
	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	mq_my_slot->status.state = state;
	LWLockRelease(mq_shared->lock);
}

/*
 * mq_parse_version
 *		"0.2.0" -> 200 (major * 10000 + minor * 100 + patch).
 */
static int
mq_parse_version(const char *v)
{
	int			major = 0,
				minor = 0,
				patch = 0;

	(void) sscanf(v, "%d.%d.%d", &major, &minor, &patch);
	return major * 10000 + minor * 100 + patch;
}

/*
 * mq_check_installed
 *		Is mq installed here, and in which version?  Sets
 *		mq_installed_version (0 when it is not).  Inside a transaction and
 *		SPI.
 */
static bool
mq_check_installed(void)
{
	bool		isnull;
	Datum		v;
	char	   *version;

	mq_installed_version = 0;
	if (!OidIsValid(get_extension_oid("mq", true)))
		return false;
	mq_stmt_exec(&mq_stmt_version, NULL, NULL, 0);
	if (SPI_processed != 1)
		return false;
	v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	version = isnull ? "" : TextDatumGetCString(v);
	mq_installed_version = mq_parse_version(version);
	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	strlcpy(mq_my_slot->status.version, version,
			sizeof(mq_my_slot->status.version));
	LWLockRelease(mq_shared->lock);
	return true;
}

/* result of one step of a pass */
typedef enum MqStepResult
{
	MQ_STEP_OK,
	MQ_STEP_FAILED,
	MQ_STEP_ABSENT				/* mq is not installed (any more) */
} MqStepResult;

/* the worker's database, for error contexts */
static char mq_dbname[NAMEDATALEN];

/*
 * mq_pass_error_context
 *		Error context of a step: which step, in which database.
 */
static void
mq_pass_error_context(void *arg)
{
	errcontext("mq worker, %s step of a pass in database \"%s\"",
			   (const char *) arg, mq_dbname);
}

/*
 * mq_worker_relay
 *		The relay step: one batch of the outbox.  Sets our latch when the
 *		batch was full, so the next pass follows at once.  Inside a
 *		transaction and SPI.  Returns the rows moved.
 */
static int64
mq_worker_relay(void)
{
	bool		isnull;
	Datum		arg = Int32GetDatum(MQ_RELAY_BATCH);
	int64		rows = 0;

	mq_stmt_exec(&mq_stmt_relay, &arg, NULL, 0);
	if (SPI_processed == 1)
	{
		Datum		v = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull);

		rows = isnull ? 0 : DatumGetInt64(v);
	}
	if (rows >= MQ_RELAY_BATCH)
		SetLatch(MyLatch);
	return rows;
}

/*
 * mq_worker_maintain
 *		The maintenance step.  Inside a transaction and SPI.
 */
static void
mq_worker_maintain(void)
{
	if (!mq_my_slot->recounted)
	{
		/* shared memory is new: pending counts were lost; recount */
		mq_stmt_exec(&mq_stmt_recount, NULL, NULL, 0);
	}
	(void) mq_twophase_sweep();
	mq_attempts_apply();
	mq_counter_flush();
	mq_stmt_exec(&mq_stmt_maintain, NULL, NULL, 0);
}

/*
 * mq_worker_record_error
 *		Keep a caught error for mq.worker_status.
 */
static void
mq_worker_record_error(ErrorData *edata)
{
	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	snprintf(mq_my_slot->status.last_error, MQ_STATUS_ERROR_LEN, "%s%s%s",
			 edata->message ? edata->message : "(no message)",
			 edata->context ? "; context: " : "",
			 edata->context ? edata->context : "");
	mq_my_slot->status.last_error_at = GetCurrentTimestamp();
	LWLockRelease(mq_shared->lock);
}

/*
 * mq_pass_step
 *		Run one step of a pass in a transaction of its own.  This is the one
 *		place where a pass starts a transaction.  An error is caught here:
 *		logged once (with the step and database as context), the
 *		transaction aborted, the error kept for mq.worker_status.  FATAL
 *		errors (SIGTERM) are not caught: they end the worker.
 */
static MqStepResult
mq_pass_step(MqPassStep step, int64 *rows)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorContextCallback errcb;
	volatile MqStepResult result = MQ_STEP_OK;
	bool		installed;

	mq_worker_set_state(step == MQ_STEP_RELAY ? MQ_WS_RELAY : MQ_WS_MAINTENANCE);
	errcb.callback = mq_pass_error_context;
	errcb.arg = (void *) mq_step_names[step];
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		/* passes run as the extension's owner, never the bootstrap superuser */
		installed = mq_acl_become_owner();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, step == MQ_STEP_RELAY ?
							   "mq relay step" : "mq maintenance step");
		if (!installed || !mq_check_installed())
			result = MQ_STEP_ABSENT;
		else if (step == MQ_STEP_RELAY)
			*rows = mq_worker_relay();
		else
			mq_worker_maintain();
		PopActiveSnapshot();
		SPI_finish();
		CommitTransactionCommand();
		if (step == MQ_STEP_MAINTENANCE && result == MQ_STEP_OK)
			mq_my_slot->recounted = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		EmitErrorReport();
		MemoryContextSwitchTo(mq_worker_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		RESUME_INTERRUPTS();
		mq_worker_record_error(edata);
		FreeErrorData(edata);
		MemoryContextReset(mq_worker_cxt);
		result = MQ_STEP_FAILED;
	}
	PG_END_TRY();
	error_context_stack = errcb.previous;
	MemoryContextSwitchTo(cxt);
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
	return result;
}

/*
 * mq_worker_pass
 *		One pass: the relay step, then the maintenance step (which runs even
 *		if the relay failed).  Records the pass for mq.worker_status and,
 *		after a failure, when the next may start.
 */
static MqStepResult
mq_worker_pass(void)
{
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz end;
	int64		rows = 0;
	MqStepResult relay;
	MqStepResult maint = MQ_STEP_OK;
	bool		failed;
	MqWorkerStatus *st = &mq_my_slot->status;

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	st->pass_started = start;
	mq_my_slot->launch_requested = false;
	LWLockRelease(mq_shared->lock);

	relay = mq_pass_step(MQ_STEP_RELAY, &rows);
	if (relay != MQ_STEP_ABSENT)
		maint = mq_pass_step(MQ_STEP_MAINTENANCE, NULL);
	end = GetCurrentTimestamp();
	failed = (relay == MQ_STEP_FAILED || maint == MQ_STEP_FAILED);

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	st->pass_started = 0;
	if (relay != MQ_STEP_ABSENT && maint != MQ_STEP_ABSENT)
	{
		st->passes++;
		st->last_pass_started = start;
		st->last_pass_us = end - start;
		st->rows_relayed += rows;
		if (rows >= MQ_RELAY_BATCH)
			st->bounds |= MQ_WBOUND_RELAY_BATCH;
		else
			st->bounds &= ~MQ_WBOUND_RELAY_BATCH;
		if (failed)
		{
			st->failed_passes++;
			st->consecutive_failures++;
			st->next_retry = end + mq_backoff_ms(st->consecutive_failures) * 1000;
			st->state = MQ_WS_BACKOFF;
		}
		else
		{
			st->consecutive_failures = 0;
			st->next_retry = 0;
			st->state = MQ_WS_IDLE;
		}
	}
	LWLockRelease(mq_shared->lock);
	if (relay == MQ_STEP_ABSENT || maint == MQ_STEP_ABSENT)
		return MQ_STEP_ABSENT;
	return failed ? MQ_STEP_FAILED : MQ_STEP_OK;
}

/*
 * mq_worker_leave
 *		mq is not installed here: give up the slot and exit, unless CREATE
 *		EXTENSION committed since the pass looked (then look again).
 *		Returns false in that case.
 */
static bool
mq_worker_leave(void)
{
	bool		leave;

	LWLockAcquire(mq_shared->lock, LW_EXCLUSIVE);
	leave = !mq_my_slot->launch_requested;
	if (leave)
		mq_my_slot->wanted = false;
	LWLockRelease(mq_shared->lock);
	return leave;
}

/*
 * mq_db_worker_main
 *		Entry point of a database worker (and of a probe, which exits at
 *		once if mq is not installed and becomes the worker if it is).
 */
void
mq_db_worker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	bool		probe = strcmp(MyBgworkerEntry->bgw_extra, MQ_PROBE_MARK) == 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	before_shmem_exit(mq_db_worker_detach, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	mq_worker_set_gucs();
	mq_worker_cxt = AllocSetContextCreate(TopMemoryContext, "mq worker",
										  ALLOCSET_DEFAULT_SIZES);

	StartTransactionCommand();
	{
		char	   *name = get_database_name(dboid);
		bool		installed = OidIsValid(get_extension_oid("mq", true));

		strlcpy(mq_dbname, name ? name : "?", sizeof(mq_dbname));
		CommitTransactionCommand();
		if (probe && !installed)
			proc_exit(0);
	}
	if (!mq_db_worker_attach(dboid, probe))
		proc_exit(0);

	for (;;)
	{
		long		sleep_ms = mq_naptime_ms;
		TimestampTz now;
		TimestampTz next_retry;
		bool		held;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		LWLockAcquire(mq_shared->lock, LW_SHARED);
		held = mq_my_slot->held_by != 0;
		next_retry = mq_my_slot->status.next_retry;
		LWLockRelease(mq_shared->lock);
		if (!mq_worker_enabled || held)
			break;

		now = GetCurrentTimestamp();
		if (next_retry > now)
			sleep_ms = (long) Max((next_retry - now) / 1000, 1);
		else
		{
			MqStepResult r = mq_worker_pass();

			if (r == MQ_STEP_ABSENT)
			{
				if (mq_worker_leave())
					break;
				continue;
			}
			if (r == MQ_STEP_FAILED)
				continue;		/* sleeps until next_retry */
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
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
	(void) mq_twophase_sweep();
	n = mq_attempts_apply();
	mq_counter_flush();
	mq_stmt_exec(&mq_stmt_maintain, NULL, NULL, 0);
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}

/*
 * mq_state_name
 *		The state column of mq.worker_status.
 */
static const char *
mq_state_name(MqWorkerState s)
{
	switch (s)
	{
		case MQ_WS_STOPPED:
			return "stopped";
		case MQ_WS_STARTING:
			return "starting";
		case MQ_WS_IDLE:
			return "idle";
		case MQ_WS_RELAY:
			return "relay";
		case MQ_WS_MAINTENANCE:
			return "maintenance";
		case MQ_WS_BACKOFF:
			return "backoff";
		case MQ_WS_HELD:
			return "held";
	}
	return "unknown";
}

#define MQ_STATUS_NCOLS 17

/*
 * mq_sql_worker_status
 *		mq._worker_status(): the registry as mq.worker_status shows it, one
 *		row per database with mq, plus one for the current database if it
 *		has no slot (state 'none').
 */
Datum
mq_sql_worker_status(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = mq_srf_init(fcinfo, &desc);
	MqDbWorker *copy = palloc(sizeof(MqDbWorker) * mq_shared->max_databases);
	uint64		registry_full;
	bool		mine = false;
	int			n = 0;
	int			i;

	mq_require_shmem();
	LWLockAcquire(mq_shared->lock, LW_SHARED);
	for (i = 0; i < mq_shared->max_databases; i++)
		if (mq_shared->workers[i].dboid != InvalidOid &&
			(mq_shared->workers[i].wanted || mq_shared->workers[i].pid != 0))
			copy[n++] = mq_shared->workers[i];
	registry_full = pg_atomic_read_u64(&mq_shared->overflows[MQ_BOUND_DATABASES]);
	LWLockRelease(mq_shared->lock);

	for (i = 0; i <= n; i++)
	{
		Datum		values[MQ_STATUS_NCOLS];
		bool		nulls[MQ_STATUS_NCOLS];
		MqWorkerStatus *st;
		MqDbWorker	none;
		Datum		bounds[4];
		int			nbounds = 0;
		int			k = 0;

		if (i == n)
		{
			/* the current database, if it has no slot */
			if (mine)
				break;
			memset(&none, 0, sizeof(none));
			none.dboid = MyDatabaseId;
			copy[i] = none;
		}
		st = &copy[i].status;
		mine = mine || copy[i].dboid == MyDatabaseId;
		memset(nulls, 0, sizeof(nulls));

		values[k++] = ObjectIdGetDatum(copy[i].dboid);
		nulls[k] = copy[i].pid == 0;
		values[k++] = Int32GetDatum(copy[i].pid);
		values[k++] = CStringGetTextDatum(i == n ? "none" : mq_state_name(st->state));
		nulls[k] = st->started_at == 0;
		values[k++] = TimestampTzGetDatum(st->started_at);
		nulls[k] = st->pass_started == 0;
		values[k++] = TimestampTzGetDatum(st->pass_started);
		nulls[k] = st->last_pass_started == 0;
		values[k++] = TimestampTzGetDatum(st->last_pass_started);
		{
			Interval   *iv = palloc0(sizeof(Interval));

			iv->time = st->last_pass_us;
			nulls[k] = st->last_pass_started == 0;
			values[k++] = IntervalPGetDatum(iv);
		}
		values[k++] = Int64GetDatum((int64) st->passes);
		values[k++] = Int64GetDatum((int64) st->failed_passes);
		values[k++] = Int32GetDatum(st->consecutive_failures);
		values[k++] = Int64GetDatum((int64) st->rows_relayed);
		values[k++] = Int64GetDatum((int64) st->launches);
		nulls[k] = st->last_error[0] == '\0';
		values[k++] = CStringGetTextDatum(st->last_error);
		nulls[k] = st->last_error_at == 0;
		values[k++] = TimestampTzGetDatum(st->last_error_at);
		nulls[k] = st->next_retry == 0;
		values[k++] = TimestampTzGetDatum(st->next_retry);
		nulls[k] = st->version[0] == '\0';
		values[k++] = CStringGetTextDatum(st->version);
		if (st->bounds & MQ_WBOUND_BGW_SLOTS)
			bounds[nbounds++] = CStringGetTextDatum("max_worker_processes");
		if (st->bounds & MQ_WBOUND_RELAY_BATCH)
			bounds[nbounds++] = CStringGetTextDatum("relay batch");
		if (i == n && registry_full > 0)
			bounds[nbounds++] = CStringGetTextDatum("worker registry");
		values[k++] = PointerGetDatum(construct_array(bounds, nbounds, TEXTOID,
													  -1, false, TYPALIGN_INT));
		Assert(k == MQ_STATUS_NCOLS);
		tuplestore_putvalues(store, desc, values, nulls);
	}
	return (Datum) 0;
}
