"""Extensions for the RDS and CloudWatch calls moto lacks, following botocore's service model.

Importing this package applies them to moto's response classes and backends.
"""
