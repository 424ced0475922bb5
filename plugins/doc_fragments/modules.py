# -*- coding: utf-8 -*-
# Copyright: Contributors to the cso.rds_hardening collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # What every module of the collection shares: the action group, the plan it returns, check and diff mode.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check mode and return the exact plan without changing AWS.
    support: full
notes:
  - The module belongs to the action group C(group/cso.rds_hardening.rds), which extends C(amazon.aws.aws), so
    C(module_defaults) for either group apply.
  - Every API call is retried with jittered backoff on throttling and transient errors (amazon.aws C(AWSRetry)).
  - Modules that change AWS return C(plan) in one layout, a list of items with C(what) (the change, in words),
    C(impact) (what the database's clients see, one of V(none), V(brief-interruption), V(interruption), V(restart),
    V(data-loss) or V(replacement)), C(before) and C(after). In check mode the module reads AWS only and C(plan) is exactly what a real
    run would do; with C(--diff) the result also has C(diff.before)/C(diff.after). A second run with the same
    options plans nothing and makes no mutating call.
"""
