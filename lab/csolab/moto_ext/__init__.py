"""Extensions for the RDS and CloudWatch calls moto lacks, following botocore's service model.

Importing this package applies them to moto's response classes and backends. Modules that wrap
the same moto method compose in import order: a later module's wrapper runs first (outermost).
"""

from csolab.moto_ext import engines  # noqa: F401  (catalogue validation, innermost)
from csolab.moto_ext import pending  # noqa: F401  (deferral of modify_db_instance changes)
from csolab.moto_ext import certificates  # noqa: F401
from csolab.moto_ext import monitoring  # noqa: F401
from csolab.moto_ext import backup_replication  # noqa: F401
from csolab.moto_ext import cloudwatch_anomaly  # noqa: F401
from csolab.moto_ext import event_subscriptions  # noqa: F401
from csolab.moto_ext import iam_managed_policies  # noqa: F401
from csolab.moto_ext import dataplane_state  # noqa: F401  (the data-plane helper's lab routes and restore wrappers)
