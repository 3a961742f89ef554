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

bool		mq_worker_enabled = true;
int			mq_naptime_ms = 1000;
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
	DefineCustomStringVariable("mq.process_once_retention",
							   "How long mq.process_once remembers a key.",
							   "An interval, such as '7 days'.",
							   &mq_process_once_retention, "7 days",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	mq_shmem_define_gucs();
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("mq");
#else
	EmitWarningsOnPlaceholders("mq");
#endif

	mq_catalog_init();
	mq_xact_init();
	mq_outbox_init();
	if (process_shared_preload_libraries_in_progress)
	{
		mq_shmem_init();
		mq_worker_init();
	}
}
