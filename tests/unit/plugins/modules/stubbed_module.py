"""A stand-in for AnsibleAWSModule whose clients are botocore Stubbers: tests queue the exact calls a
module must make, and any other call fails."""

import boto3
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper


class Exited(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


class Failed(Exited):
    pass


class StubbedModule:
    def __init__(self, argument_spec, params, check_mode=False, region="eu-west-2"):
        self.params = {name: option.get("default") for name, option in argument_spec.items()}
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = True
        self.region = region
        self.warnings = []
        self.stubbers = {}
        self.clients = {}

    def client(self, service, retry_decorator=None, region=None, **params):
        """One stubbed client per service, and per region for a region other than the module's
        (``self.clients`` keys: ``rds``, ``rds@eu-west-1``)."""
        name = service if region in (None, self.region) else f"{service}@{region}"
        if name not in self.clients:
            client = boto3.client(service, region_name=region or self.region, aws_access_key_id="x",
                                  aws_secret_access_key="x")
            self.stubbers[name] = Stubber(client)
            self.stubbers[name].activate()
            self.clients[name] = client
        client = self.clients[name]
        return client if retry_decorator is None else RetryingBotoClientWrapper(client, retry_decorator)

    def stub(self, service, region=None):
        self.client(service, region=region)
        return self.stubbers[service if region in (None, self.region) else f"{service}@{region}"]

    def fail_json(self, **kwargs):
        raise Failed(kwargs)

    def fail_json_aws(self, exception, msg=None, **kwargs):
        raise Failed(dict(kwargs, msg=msg, exception=str(exception)))

    def exit_json(self, **kwargs):
        raise Exited(kwargs)

    def warn(self, message):
        self.warnings.append(message)

    def assert_all_calls_made(self):
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()
