/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  Saved SPI plans (executed as they are, under the planner-settings
 *	  guard of the hot statements, or with the latest snapshot),
 *	  set-returning-function plumbing and the argument checks that every
 *	  SQL-callable function of mq shares.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

/*
 * mq_stmt_plan
 *		Return the saved plan of stmt, preparing and saving it on first use.
 *
 * Must be called inside SPI_connect().  The saved plan lives in the plan
 * cache for the rest of the backend's life; the plan cache re-plans it when
 * the tables it reads change (e.g. after ANALYZE).
 */
SPIPlanPtr
mq_stmt_plan(MqStmt *stmt)
{
	if (stmt->plan == NULL)
	{
		SPIPlanPtr	plan;

		/*
		 * A generic plan: the hot-path statements have one good shape (an
		 * index range scan on the queue, a TID scan for the rows found)
		 * whatever the arguments, and custom plans would be re-planned on
		 * every call because LIMIT $n makes the generic one look costly.
		 */
		plan = SPI_prepare_cursor(stmt->sql, stmt->nargs, stmt->argtypes,
								  CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "mq: SPI_prepare failed for \"%s\": %s",
				 stmt->sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "mq: SPI_keepplan failed");
		stmt->plan = plan;
	}
	return stmt->plan;
}

/*
 * mq_stmt_exec
 *		Execute stmt with the given arguments; results land in SPI_tuptable.
 */
void
mq_stmt_exec(MqStmt *stmt, Datum *values, const char *nulls, long count)
{
	int			rc;

	rc = SPI_execute_plan(mq_stmt_plan(stmt), values, nulls, false, count);
	if (rc < 0)
		elog(ERROR, "mq: SPI_execute_plan failed: %s",
			 SPI_result_code_string(rc));
}

/*
 * The planner settings the hot statements are planned under: each finds
 * its rows through a unique index, the ready index or a TID list, and
 * nothing else is ever better, whatever the statistics say (none yet,
 * stale, or a million rows).  Fixing them at execution (not only at
 * preparation) holds for every re-plan too: the plan cache re-plans a saved
 * plan inside SPI_execute_plan whenever the table's statistics change.
 */
static const char *const mq_plan_guard_gucs[] = {
	"enable_seqscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"
};

/*
 * mq_plan_guard
 *		Set the planner settings above for the statements that follow (a
 *		plan built or rebuilt meanwhile uses the intended access paths);
 *		returns the GUC nest level to give mq_plan_unguard.  An error in
 *		between restores them with the (sub)transaction's abort.
 */
int
mq_plan_guard(void)
{
	int			level = NewGUCNestLevel();
	int			i;

	for (i = 0; i < lengthof(mq_plan_guard_gucs); i++)
		(void) set_config_option(mq_plan_guard_gucs[i], "off",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

/*
 * mq_plan_unguard
 *		Restore the settings mq_plan_guard changed.
 */
void
mq_plan_unguard(int level)
{
	AtEOXact_GUC(true, level);
}

/*
 * mq_stmt_exec_guarded
 *		mq_stmt_exec under mq_plan_guard: for the hot statements whose
 *		access path must not depend on the statistics.
 */
void
mq_stmt_exec_guarded(MqStmt *stmt, Datum *values, const char *nulls, long count)
{
	int			level = mq_plan_guard();

	mq_stmt_exec(stmt, values, nulls, count);
	mq_plan_unguard(level);
}

/*
 * mq_stmt_exec_latest
 *		Execute the read-only stmt with the latest snapshot rather than the
 *		transaction's: it sees every change committed so far, also inside a
 *		REPEATABLE READ or SERIALIZABLE transaction (mq's catalog look-ups
 *		after taking an object's lock, see catalog.c).
 */
void
mq_stmt_exec_latest(MqStmt *stmt, Datum *values, const char *nulls, long count)
{
	int			rc;

	rc = SPI_execute_snapshot(mq_stmt_plan(stmt), values, nulls,
							  GetLatestSnapshot(), InvalidSnapshot,
							  true, false, count);
	if (rc < 0)
		elog(ERROR, "mq: SPI_execute_snapshot failed: %s",
			 SPI_result_code_string(rc));
}

/*
 * mq_stmt_exec_latest_write
 *		Execute the writing stmt with the latest snapshot (see
 *		mq_stmt_exec_latest): COMMIT PREPARED's bookkeeping must see the
 *		rows the prepared transaction just committed whatever snapshot its
 *		transaction holds.
 */
void
mq_stmt_exec_latest_write(MqStmt *stmt, Datum *values, const char *nulls,
						  long count)
{
	int			rc;

	rc = SPI_execute_snapshot(mq_stmt_plan(stmt), values, nulls,
							  GetLatestSnapshot(), InvalidSnapshot,
							  false, false, count);
	if (rc < 0)
		elog(ERROR, "mq: SPI_execute_snapshot failed: %s",
			 SPI_result_code_string(rc));
}

/*
 * mq_int8_array / mq_int4_array
 *		bigint[] and integer[] arguments of saved statements.
 */
ArrayType *
mq_int8_array(const Datum *d, int n)
{
	return construct_array((Datum *) d, n, INT8OID, 8, FLOAT8PASSBYVAL,
						   TYPALIGN_DOUBLE);
}

ArrayType *
mq_int4_array(const Datum *d, int n)
{
	return construct_array((Datum *) d, n, INT4OID, 4, true, TYPALIGN_INT);
}

/*
 * mq_hash_create
 *		A backend-local hash table with fixed-size binary keys, allocated in
 *		cxt (so it goes away with that context).
 */
HTAB *
mq_hash_create(const char *what, Size keysize, Size entrysize, long nelem,
			   MemoryContext cxt)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = cxt;
	return hash_create(what, nelem, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * mq_srf_init
 *		Set up a materialized set-returning function call.
 *
 * Returns the tuplestore to fill (allocated in the per-query context) and
 * the result row descriptor.  Works on every supported server version.
 */
Tuplestorestate *
mq_srf_init(FunctionCallInfo fcinfo, TupleDesc *tupdesc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext oldcxt;
	Tuplestorestate *store;
	TupleDesc	desc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("materialize mode required, but it is not allowed in this context")));

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
	{
		/* SETOF a scalar: a one-column descriptor of the result type */
		desc = CreateTemplateTupleDesc(1);
		TupleDescInitEntry(desc, (AttrNumber) 1, "result",
						   get_fn_expr_rettype(fcinfo->flinfo), -1, 0);
	}
	desc = CreateTupleDescCopy(desc);
	store = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = desc;
	MemoryContextSwitchTo(oldcxt);

	*tupdesc = desc;
	return store;
}

/*
 * mq_arg_queue_name
 *		The queue-name argument argno; a NULL is an error.
 */
text *
mq_arg_queue_name(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("queue_name must not be NULL")));
	return PG_GETARG_TEXT_PP(argno);
}

/*
 * mq_arg_interval
 *		A non-negative interval argument; NULL yields dflt (which may be NULL).
 */
Interval *
mq_arg_interval(FunctionCallInfo fcinfo, int argno, const char *argname,
				Interval *dflt)
{
	Interval   *iv;
	Interval	zero;

	if (PG_ARGISNULL(argno))
		return dflt;
	iv = PG_GETARG_INTERVAL_P(argno);
	memset(&zero, 0, sizeof(zero));
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp,
										  IntervalPGetDatum(iv),
										  IntervalPGetDatum(&zero))) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", argname),
				 errdetail("The value given was %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(iv))))));
	return iv;
}

/*
 * mq_arg_max_messages
 *		A max_messages argument: NULL or less than 1 is an error.
 */
int32
mq_arg_max_messages(FunctionCallInfo fcinfo, int argno)
{
	int32		n;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_messages must not be NULL")));
	n = PG_GETARG_INT32(argno);
	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_messages must be at least 1, got %d", n)));
	return n;
}

/*
 * mq_check_array
 *		Complain unless arr is one-dimensional and (unless nulls_ok) free of
 *		NULLs.  Returns its length.
 */
int
mq_check_array(ArrayType *arr, const char *argname, bool nulls_ok)
{
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", argname)));
	if (!nulls_ok && array_contains_nulls(arr))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain NULL elements", argname),
				 errhint("Send a JSON null as 'null'::jsonb.")));
	return ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
}

/*
 * mq_check_same_length
 *		Complain unless an optional per-message array argument (argname, n
 *		elements) has one element per payload.
 */
void
mq_check_same_length(int n, int npayloads, const char *argname)
{
	if (n != npayloads)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s has %d elements but payloads has %d",
						argname, n, npayloads),
				 errhint("Pass one %s element per payload, or NULL for none.",
						 argname)));
}
