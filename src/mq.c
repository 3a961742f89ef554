/*-------------------------------------------------------------------------
 *
 * mq.c
 *	  Entry point of the mq extension: _PG_init and the module's GUCs.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(mq_sql_check_preload);

bool		mq_worker_enabled = true;
int			mq_naptime_ms = 1000;
int			mq_worker_backoff_max_ms = 60000;
static char *mq_process_once_retention = NULL;

/*
 * _PG_init
 *		Module load.  Under shared_preload_libraries this also sets up shared
 *		memory and registers the background worker launcher.
 */
void
_PG_init(void)
{
	DefineCustomBoolVariable("mq.worker_enabled",
							 "Run mq's background workers.",
							 "When off, the workers exit and none are started; run mq.run_maintenance() and mq.relay() by hand.",
							 &mq_worker_enabled, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("mq.naptime",
							"Time between two maintenance passes of an mq worker.",
							NULL,
							&mq_naptime_ms, 1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("mq.worker_backoff_max",
							"Longest wait of an mq worker after failed passes.",
							"After a failed pass the worker waits 1 s, doubled for each failure in a row, up to this.",
							&mq_worker_backoff_max_ms, 60000, MQ_BACKOFF_BASE_MS, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("mq.process_once_retention",
							   "How long mq.process_once remembers a key.",
							   "An interval, such as '7 days'.",
							   &mq_process_once_retention, "7 days",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	/* sizes of shared memory (PGC_POSTMASTER): only while preloading */
	if (process_shared_preload_libraries_in_progress)
		mq_shmem_define_gucs();
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("mq");
#else
	EmitWarningsOnPlaceholders("mq");
#endif

	/* first: its callback must run after the others (newest run first) */
	mq_twophase_init();
	mq_catalog_init();
	mq_xact_init();
	mq_outbox_init();
	if (process_shared_preload_libraries_in_progress)
	{
		mq_shmem_init();
		mq_worker_init();
	}
}

/*
 * mq_sql_check_preload
 *		mq._check_preload(): refuse to install mq in a server that did not
 *		load it through shared_preload_libraries (CREATE EXTENSION would
 *		succeed, then nothing would relay, count or maintain).
 */
Datum
mq_sql_check_preload(PG_FUNCTION_ARGS)
{
	if (mq_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("mq must be loaded via shared_preload_libraries"),
				 errdetail("Without it, mq's background worker does not run: nothing would relay the outbox, count attempts or dead-letter messages."),
				 errhint("Add 'mq' to shared_preload_libraries in postgresql.conf, restart the server, then run CREATE EXTENSION mq again.")));
	PG_RETURN_VOID();
}
