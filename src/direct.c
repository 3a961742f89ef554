/*-------------------------------------------------------------------------
 *
 * direct.c
 *	  Direct inserts into mq's own tables: rows formed in C and written
 *	  with the table AM and the executor's index routines, without SPI,
 *	  parsing or planning.
 *
 * The hot write paths (send, send_batch, publish, publish_batch) insert
 * rows whose every column they know.  Going through SPI costs a portal, an
 * executor start-up and a plan revalidation per call, which is most of the
 * cost of a one-row insert; a batch through SPI also writes one WAL record
 * per row where the table AM's multi-insert writes one per page.
 *
 * Each table mq writes this way is described by an MqDirectRel: its name
 * and the columns the caller supplies, in the caller's order.  The first
 * use in a backend (and the first after mq's tables change) looks up the
 * OID and maps the columns to attribute numbers, and refuses a table whose
 * columns do not match (a library newer or older than the installed SQL).
 * Privileges are checked as an INSERT would check them.  The tables carry
 * no row triggers that these paths rely on: whatever a trigger would do is
 * done by the caller.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "parser/parse_relation.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

/*
 * mq_direct_lookup_ext
 *		Resolve dr's OID and column map if not done since the last
 *		invalidation of mq's catalog cache.  With missing_ok, a missing
 *		table leaves dr->relid invalid instead of raising an error.
 */
static void
mq_direct_lookup_ext(MqDirectRel *dr, bool missing_ok)
{
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	int			i;
	int			live = 0;

	if (OidIsValid(dr->relid) && dr->generation == mq_catalog_generation)
		return;
	/* so that the invalidation callback knows which relation to watch */
	(void) mq_queue_relid_get();
	relid = get_relname_relid(dr->relname, get_namespace_oid("mq", false));
	if (!OidIsValid(relid) && missing_ok)
		return;
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table mq.%s is missing", dr->relname),
				 errhint("Reinstall the extension with DROP EXTENSION mq; CREATE EXTENSION mq.")));
	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	if (desc->natts > MQ_DIRECT_MAX_ATTS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table mq.%s has more columns than this version of mq writes",
						dr->relname),
				 errhint("Install the mq library that matches the extension's SQL version.")));
	for (i = 0; i < dr->ncols; i++)
	{
		AttrNumber	attnum = attnameAttNum(rel, dr->colnames[i], false);

		if (attnum <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table mq.%s has no column \"%s\"",
							dr->relname, dr->colnames[i]),
					 errhint("Install the mq library that matches the extension's SQL version.")));
		dr->attnum[i] = attnum;
		dr->attbyval[i] = TupleDescAttr(desc, attnum - 1)->attbyval;
		dr->attlen[i] = TupleDescAttr(desc, attnum - 1)->attlen;
	}
	for (i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			live++;
	if (live != dr->ncols)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table mq.%s has %d columns, this version of mq writes %d",
						dr->relname, live, dr->ncols),
				 errhint("Install the mq library that matches the extension's SQL version.")));
	dr->natts = desc->natts;
	table_close(rel, AccessShareLock);
	dr->relid = relid;
	dr->generation = mq_catalog_generation;
}

/*
 * mq_direct_lookup
 *		Resolve dr's OID and column map; an error if the table is missing.
 */
static void
mq_direct_lookup(MqDirectRel *dr)
{
	mq_direct_lookup_ext(dr, false);
}

/*
 * mq_direct_relid_missing_ok
 *		OID of dr's table, or InvalidOid if there is no such table.
 */
Oid
mq_direct_relid_missing_ok(MqDirectRel *dr)
{
	mq_direct_lookup_ext(dr, true);
	return dr->relid;
}

/*
 * mq_direct_relid
 *		OID of dr's table (looked up once per catalog generation).
 */
Oid
mq_direct_relid(MqDirectRel *dr)
{
	mq_direct_lookup(dr);
	return dr->relid;
}

/*
 * mq_check_writable
 *		Refuse to run what (a function name) in a read-only transaction, on
 *		a standby, or in parallel mode, as an INSERT would be refused.
 */
void
mq_check_writable(const char *what)
{
	PreventCommandIfReadOnly(what);
	PreventCommandIfParallelMode(what);
}

/*
 * mq_direct_check_insert
 *		Raise the error an INSERT would raise unless the current user may
 *		insert into dr's table.
 */
void
mq_direct_check_insert(MqDirectRel *dr)
{
	AclResult	aclresult;

	mq_direct_lookup(dr);
	aclresult = pg_class_aclcheck(dr->relid, GetUserId(), ACL_INSERT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, get_rel_name(dr->relid));
}

/*
 * mq_direct_open
 *		Open dr's table and its indexes for inserting on behalf of what (a
 *		function name, for error messages).  Checks that the transaction may
 *		write and, with check_acl, that the user may insert into the table.
 */
void
mq_direct_open(MqDirect *d, MqDirectRel *dr, const char *what, bool check_acl)
{
	MemoryContext oldcxt;

	mq_check_writable(what);
	mq_direct_lookup(dr);

	memset(d, 0, sizeof(*d));
	d->dr = dr;
	d->rel = table_open(dr->relid, RowExclusiveLock);
	/* taking the lock may have processed an invalidation: check again */
	if (dr->generation != mq_catalog_generation ||
		RelationGetDescr(d->rel)->natts != dr->natts)
	{
		table_close(d->rel, RowExclusiveLock);
		dr->relid = InvalidOid;
		mq_direct_lookup(dr);
		d->rel = table_open(dr->relid, RowExclusiveLock);
	}
	if (check_acl)
		mq_direct_check_insert(dr);

	d->estate = CreateExecutorState();

	/*
	 * Slots get a private copy of the descriptor: the relation's own is
	 * reference-counted, and each slot's pin would be remembered by the
	 * resource owner, whose forgetting is linear in what it holds.
	 */
	oldcxt = MemoryContextSwitchTo(d->estate->es_query_cxt);
	d->desc = CreateTupleDescCopy(RelationGetDescr(d->rel));
	MemoryContextSwitchTo(oldcxt);
	d->estate->es_output_cid = GetCurrentCommandId(true);
	d->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(d->rri, d->rel, 1, NULL, 0);
	ExecOpenIndices(d->rri, false);
}

/*
 * mq_direct_slot
 *		A fresh slot of the table holding one row: values and nulls in dr's
 *		column order.  Allocated in the executor state's memory.
 */
static TupleTableSlot *
mq_direct_slot(MqDirect *d, const Datum *values, const bool *nulls)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(d->estate->es_query_cxt);
	TupleTableSlot *slot;
	int			i;

	slot = MakeSingleTupleTableSlot(d->desc, table_slot_callbacks(d->rel));
	MemoryContextSwitchTo(oldcxt);
	ExecClearTuple(slot);
	for (i = 0; i < d->dr->natts; i++)
	{
		slot->tts_values[i] = (Datum) 0;
		slot->tts_isnull[i] = true;
	}
	for (i = 0; i < d->dr->ncols; i++)
	{
		int			a = d->dr->attnum[i] - 1;

		slot->tts_values[a] = values[i];
		slot->tts_isnull[a] = nulls[i];
	}
	ExecStoreVirtualTuple(slot);
	return slot;
}

/*
 * mq_direct_index
 *		Insert slot's index entries (the row is in the heap already).
 */
static void
mq_direct_index(MqDirect *d, TupleTableSlot *slot)
{
	if (d->rri->ri_NumIndices > 0)
	{
		List	   *recheck;

#if PG_VERSION_NUM >= 160000
		recheck = ExecInsertIndexTuples(d->rri, slot, d->estate, false, false,
										NULL, NIL, false);
#else
		recheck = ExecInsertIndexTuples(d->rri, slot, d->estate, false, false,
										NULL, NIL);
#endif
		list_free(recheck);
	}
	ResetPerTupleExprContext(d->estate);
}

/*
 * mq_direct_insert
 *		Insert one row: values and nulls in dr's column order.
 */
void
mq_direct_insert(MqDirect *d, const Datum *values, const bool *nulls)
{
	TupleTableSlot *slot = mq_direct_slot(d, values, nulls);

	table_tuple_insert(d->rel, slot, d->estate->es_output_cid, 0, NULL);
	mq_direct_index(d, slot);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * mq_direct_insert_many
 *		Insert nrows rows with the table AM's multi-insert (one WAL record per
 *		page rather than per row).  Row r's columns are values[r * ncols ..],
 *		nulls likewise.
 */
void
mq_direct_insert_many(MqDirect *d, int nrows, const Datum *values,
					  const bool *nulls)
{
	int			ncols = d->dr->ncols;
	TupleTableSlot **slots;
	int			r;

	if (nrows <= 0)
		return;
	slots = palloc(nrows * sizeof(TupleTableSlot *));
	for (r = 0; r < nrows; r++)
		slots[r] = mq_direct_slot(d, values + r * ncols, nulls + r * ncols);
	table_multi_insert(d->rel, slots, nrows, d->estate->es_output_cid, 0, NULL);
	for (r = 0; r < nrows; r++)
	{
		mq_direct_index(d, slots[r]);
		ExecDropSingleTupleTableSlot(slots[r]);
	}
	pfree(slots);
}

/*
 * mq_direct_close
 *		Close what mq_direct_open opened; the lock is kept until the end of
 *		the transaction, as an INSERT keeps it.
 */
void
mq_direct_close(MqDirect *d)
{
	ExecCloseIndices(d->rri);
	FreeExecutorState(d->estate);
	table_close(d->rel, NoLock);
	d->rel = NULL;
}
