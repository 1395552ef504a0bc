"""Elasticsearch store: client factory, index templates, bulk loading, scans."""
