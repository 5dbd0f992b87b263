/*
 * migration-internal.h - hooks of the migration module for its own tests
 * (harness/unit/test-migration.c).  Not for other modules.
 */
#ifndef MIGCERT_MIGRATION_INTERNAL_H
#define MIGCERT_MIGRATION_INTERNAL_H

#include "migration.h"

/* The one state setter (checks the arc table, traces, emits MIGRATION).
 * Returns 0, or -EINVAL for an arc the table refuses (state unchanged). */
int mig__migration_set_status(MigMigration *mm, MigStatus to);
/* Choose which table applies, for walking the tables in tests (only while
 * the status is none). */
void mig__migration_set_direction(MigMigration *mm, bool incoming);

#endif
