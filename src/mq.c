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

/*
 * _PG_init
 *		Module load: set up the per-backend caches.
 */
void
_PG_init(void)
{
	mq_catalog_init();
}
