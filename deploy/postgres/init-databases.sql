-- One PostgreSQL server, three databases: Airflow's metadata, MLflow's tracking/registry store,
-- and the platform's app DB (lineage, quarantine, paper trades, audit).
--
-- Mounted into /docker-entrypoint-initdb.d by docker-compose.yml. The postgres image runs it once,
-- as POSTGRES_USER, on the first start with an empty data volume (so all three databases are owned
-- by that user); it is not re-run afterwards: `docker compose down -v` to start from scratch.
-- POSTGRES_DB is set to `postgres` in the compose file so that none of these names already exists.
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
CREATE DATABASE trading;
