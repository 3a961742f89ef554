/*-------------------------------------------------------------------------
 *
 * mq.h
 *	  Declarations shared by the source files of the mq extension.
 *
 * mq keeps queues in ordinary tables of the "mq" schema and reaches them
 * through SPI plans that are prepared once per backend.  This header names
 * the pieces each file owns:
 *
 *	  mq.c		 module entry point (_PG_init), GUCs
 *	  catalog.c	 queue names: validation and the per-backend queue cache
 *	  queue.c	 send, send_batch, poll, pop, ack, extend
 *	  spi_util.c saved SPI plans and set-returning-function helpers
 *
 *-------------------------------------------------------------------------
 */
#ifndef MQ_H
#define MQ_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/timestamp.h"

/* Longest queue name, in bytes; like an SQL identifier. */
#define MQ_MAX_NAME_LEN (NAMEDATALEN - 1)

/* Most arguments any saved statement takes. */
#define MQ_STMT_MAX_ARGS 8

/*
 * A queue as the hot paths see it: a copy of its mq.queue row, cached per
 * backend and dropped whenever mq.queue is invalidated.
 */
typedef struct MqQueue
{
	char		name[NAMEDATALEN];	/* hash key; NUL-terminated */
	int32		queue_id;
	Interval	visibility_timeout;
	int32		max_attempts;
} MqQueue;

/*
 * One SQL statement of a hot path.  The plan is prepared and saved on first
 * use, then reused by every later call in the backend; the plan cache
 * revalidates it if the objects it uses change.
 */
typedef struct MqStmt
{
	const char *sql;
	int			nargs;
	Oid			argtypes[MQ_STMT_MAX_ARGS];
	SPIPlanPtr	plan;
} MqStmt;

/* catalog.c */
extern void mq_check_queue_name(const char *name, int len);
extern const MqQueue *mq_queue_get(text *queue_name);
extern void mq_catalog_init(void);

/* spi_util.c */
extern SPIPlanPtr mq_stmt_plan(MqStmt *stmt);
extern void mq_stmt_exec(MqStmt *stmt, Datum *values, const char *nulls,
						 long count);
extern Tuplestorestate *mq_srf_init(FunctionCallInfo fcinfo,
									TupleDesc *tupdesc);

/* argument checks shared by the SQL-callable functions */
extern text *mq_arg_queue_name(FunctionCallInfo fcinfo, int argno);
extern Interval *mq_arg_interval(FunctionCallInfo fcinfo, int argno,
								 const char *argname, Interval *dflt);
extern int32 mq_arg_max_messages(FunctionCallInfo fcinfo, int argno);

#endif							/* MQ_H */
