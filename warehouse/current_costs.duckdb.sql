-- current_costs: the current rows of every month, those of its latest seal, so that a plain
-- SUM(amount_value) over it is exact (costs alone keeps every version of a restated month).
-- DuckDB, tables loaded by target-duckdb, which keeps the decimals as text: the view gives
-- amount_value and quantity as DECIMAL(38,20), every digit (DuckDB's NUMERIC would round to
-- 3 places). Created in the current schema, next to the tables: see docs/warehouse.md
-- ("A view of the current rows") for the command. Works with upserting and append-only
-- loading alike. Run it again after the loader adds a column.
CREATE OR REPLACE VIEW current_costs AS
WITH current_months AS (
  SELECT organization, month, max(month_version) AS month_version
  FROM cost_months
  GROUP BY organization, month
)
SELECT costs.* REPLACE (
  CAST(amount_value AS DECIMAL(38,20)) AS amount_value,
  CAST(quantity AS DECIMAL(38,20)) AS quantity
)
FROM costs
JOIN current_months USING (organization, month, month_version);
