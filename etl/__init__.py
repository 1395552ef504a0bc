"""monetl: monitoring ETL and reporting library. No Airflow import anywhere in this package."""

__version__ = "0.1.0"
