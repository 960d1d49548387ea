-- current_costs: the current rows of every month, those of its latest seal, so that a plain
-- SUM(amount_value) over it is exact (costs alone keeps every version of a restated month).
-- PostgreSQL, tables loaded by meltanolabs-target-postgres (or any loader that keeps
-- amount_value NUMERIC). Created in the first schema of the search_path, next to the
-- tables: see docs/warehouse.md ("A view of the current rows") for the command. Works with
-- upserting and append-only loading alike. Run it again after the loader adds a column.
BEGIN;
DROP VIEW IF EXISTS current_costs;
CREATE VIEW current_costs AS
WITH current_months AS (
  SELECT organization, month, max(month_version) AS month_version
  FROM cost_months
  GROUP BY organization, month
)
SELECT costs.*
FROM costs
JOIN current_months USING (organization, month, month_version);
COMMIT;
