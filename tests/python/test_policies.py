"""IAM-style policies with `kinesin server --credentials FILE`: identity policies of the file's
principals and resource policies of streams (PutResourcePolicy) are enforced with AWS's order
(an explicit Deny wins; within an account an identity or resource policy Allow suffices; across
accounts both must allow) and AWS's AccessDeniedException messages. A principal without policies
may do nothing, admins included (admin only opens the admin API). Policies edited in the file
apply without a restart.

Account A (111111111111): olive may do everything but delete `keep-*` streams; reader may read
(Get*, Describe*, List*) A's streams; writer may PutRecord(s) to `pub-*` streams; nobody has no
policy; ada is an admin without policies. Account B (222222222222): bea's identity policy allows
reading and writing any stream, ben's allows everything; neither is named by A's streams until a
resource policy names bea."""

import json

import boto3
import pytest
from botocore.config import Config

from conftest import Server, create_stream, poll
from test_tls import Ca
# test_auth's `server` fixture: a node started with this module's `creds_path`.
from test_auth import _works, client, credentials_toml, error_of, log_of, server, signed_get  # noqa: F401

A, B = "111111111111", "222222222222"
REGION = "us-east-1"


def allow(actions, resources="*", effect="Allow"):
    return {"Effect": effect, "Action": actions, "Resource": resources}


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def user(name, account, policies=(), admin=False):
    key = f"AKIA{name.upper()}{account[:4]}POL"
    return dict(name=name, account=account, key=key, secret=f"{name}-secret", admin=admin,
                policies=list(policies), arn=f"arn:aws:iam::{account}:user/{name}")


OLIVE = user("olive", A, [policy(allow("kinesis:*"),
                                 allow("kinesis:DeleteStream", f"arn:aws:kinesis:*:{A}:stream/keep-*", "Deny"))])
READER = user("reader", A, [policy(allow(["kinesis:Get*", "kinesis:describe*", "kinesis:List*"],
                                         f"arn:aws:kinesis:*:{A}:stream/*"))])
WRITER = user("writer", A, [policy(allow(["kinesis:PutRecord", "kinesis:PutRecords"],
                                         f"arn:aws:kinesis:{REGION}:{A}:stream/pub-*"))])
NOBODY = user("nobody", A)
ADA = user("ada", A, admin=True)
BEA = user("bea", B, [policy(allow(["kinesis:PutRecord", "kinesis:GetRecords", "kinesis:GetShardIterator",
                                    "kinesis:DescribeStreamSummary"]))])
BEN = user("ben", B, [policy(allow("*"))])
USERS = [OLIVE, READER, WRITER, NOBODY, ADA, BEA, BEN]


@pytest.fixture(scope="module")
def creds_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy-creds") / "credentials.toml"
    path.write_text(credentials_toml(*USERS))
    return path


def stream_arn(name, account=A):
    return f"arn:aws:kinesis:{REGION}:{account}:stream/{name}"


def denied(who, action, resource, why):
    """AWS's AccessDeniedException message."""
    on = "" if resource is None else f" on resource: {resource}"
    reasons = {
        "identity": f"because no identity-based policy allows the {action} action",
        "resource": f"because no resource-based policy allows the {action} action",
        "identity deny": "with an explicit deny in an identity-based policy",
        "resource deny": "with an explicit deny in a resource-based policy",
    }
    return ("AccessDeniedException", f"User: {who['arn']} is not authorized to perform: {action}{on} {reasons[why]}", 400)


def read_all(kinesis, **stream):
    """The data of the records of a one-shard stream named by StreamName or StreamARN."""
    it = kinesis.get_shard_iterator(ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON",
                                    **stream)["ShardIterator"]
    return [r["Data"] for r in kinesis.get_records(ShardIterator=it)["Records"]]


def test_identity_policies_allow_actions_and_resources_by_wildcards(server):
    olive, reader, writer = (client(server, u) for u in (OLIVE, READER, WRITER))
    private = create_stream(olive, shards=1)
    public = create_stream(olive, shards=1, name=f"pub-{private}")
    # writer: PutRecord on pub-* only, nothing else.
    writer.put_record(StreamName=public, Data=b"w", PartitionKey="k")
    assert error_of(lambda: writer.put_record(StreamName=private, Data=b"w", PartitionKey="k")) == denied(
        WRITER, "kinesis:PutRecord", stream_arn(private), "identity")
    assert error_of(lambda: writer.describe_stream_summary(StreamName=public)) == denied(
        WRITER, "kinesis:DescribeStreamSummary", stream_arn(public), "identity")
    # reader: kinesis:Get*, describe* (actions match without case) and List* on A's streams.
    assert read_all(reader, StreamName=public) == [b"w"]
    assert reader.describe_stream_summary(StreamName=private)["StreamDescriptionSummary"]["StreamName"] == private
    assert reader.list_shards(StreamName=private)["Shards"]
    assert error_of(lambda: reader.put_record(StreamName=public, Data=b"r", PartitionKey="k")) == denied(
        READER, "kinesis:PutRecord", stream_arn(public), "identity")
    # ListStreams acts on no resource ("*"): a stream/* grant does not cover it, and AWS's
    # message then names no resource.
    assert error_of(reader.list_streams) == denied(READER, "kinesis:ListStreams", None, "identity")
    assert private in olive.list_streams()["StreamNames"]


def test_no_policy_denies_everything_admins_included(server):
    for who in (NOBODY, ADA):
        kinesis = client(server, who)
        assert error_of(kinesis.list_streams) == denied(who, "kinesis:ListStreams", None, "identity")
        name = f"never-{who['name']}"
        assert error_of(lambda: kinesis.create_stream(StreamName=name, ShardCount=1)) == denied(
            who, "kinesis:CreateStream", stream_arn(name), "identity")
    # The admin API stays the admins' alone, whatever their Kinesis policies.
    assert signed_get(server, "/admin/v1/cluster", ADA).status == 200
    refused = signed_get(server, "/admin/v1/cluster", OLIVE)
    assert refused.status == 400 and b"AccessDeniedException" in refused.body


def test_an_explicit_deny_wins_over_an_allow(server):
    olive = client(server, OLIVE)
    kept = create_stream(olive, shards=1, name=f"keep-{create_stream(olive, shards=1)}")
    assert error_of(lambda: olive.delete_stream(StreamName=kept)) == denied(
        OLIVE, "kinesis:DeleteStream", stream_arn(kept), "identity deny")
    other = create_stream(olive, shards=1)
    olive.delete_stream(StreamName=other)


def test_a_resource_policy_grants_another_accounts_user(server):
    olive, bea, ben = (client(server, u) for u in (OLIVE, BEA, BEN))
    name = create_stream(olive, shards=1)
    arn = stream_arn(name)
    # bea's own policy allows PutRecord anywhere, but A's stream does not name her.
    assert error_of(lambda: bea.put_record(StreamARN=arn, Data=b"b", PartitionKey="k")) == denied(
        BEA, "kinesis:PutRecord", arn, "resource")
    grant = policy({"Effect": "Allow", "Principal": {"AWS": BEA["arn"]},
                    "Action": ["kinesis:PutRecord", "kinesis:GetRecords", "kinesis:GetShardIterator"], "Resource": arn})
    olive.put_resource_policy(ResourceARN=arn, Policy=json.dumps(grant))
    poll(lambda: _works(lambda: bea.put_record(StreamARN=arn, Data=b"from-b", PartitionKey="k")),
         timeout=10, what="bea's grant to apply")
    # The record went to A's stream, and bea reads it back through the ARN.
    assert b"from-b" in read_all(olive, StreamName=name)
    assert b"from-b" in read_all(bea, StreamARN=arn)
    # What the resource policy does not grant stays refused, even where bea's own policy allows.
    assert error_of(lambda: bea.describe_stream_summary(StreamARN=arn)) == denied(
        BEA, "kinesis:DescribeStreamSummary", arn, "resource")
    # Another user of B, whose own policy allows everything, is not named.
    assert error_of(lambda: ben.put_record(StreamARN=arn, Data=b"x", PartitionKey="k")) == denied(
        BEN, "kinesis:PutRecord", arn, "resource")
    assert error_of(lambda: ben.delete_stream(StreamARN=arn)) == denied(BEN, "kinesis:DeleteStream", arn, "resource")
    # B's users only name their own account's streams by name.
    assert error_of(lambda: bea.put_record(StreamName=name, Data=b"x", PartitionKey="k"))[0] == "ResourceNotFoundException"


def test_resource_policies_deny_and_grant_within_the_account(server):
    olive, writer, nobody = (client(server, u) for u in (OLIVE, WRITER, NOBODY))
    name = create_stream(olive, shards=1, name=f"pub-{create_stream(olive, shards=1)}")
    arn = stream_arn(name)
    statements = policy(
        {"Effect": "Deny", "Principal": {"AWS": WRITER["arn"]}, "Action": "kinesis:PutRecord", "Resource": arn},
        {"Effect": "Allow", "Principal": {"AWS": [NOBODY["arn"]]}, "Action": "kinesis:DescribeStreamSummary",
         "Resource": arn},
        # Naming the account, not the user, is not enough within it: the identity policy decides.
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"}, "Action": "kinesis:ListShards",
         "Resource": arn},
    )
    writer.put_record(StreamName=name, Data=b"before", PartitionKey="k")
    olive.put_resource_policy(ResourceARN=arn, Policy=json.dumps(statements))
    assert error_of(lambda: writer.put_record(StreamName=name, Data=b"w", PartitionKey="k")) == denied(
        WRITER, "kinesis:PutRecord", arn, "resource deny")
    writer.put_records(StreamName=name, Records=[{"Data": b"batch", "PartitionKey": "k"}])
    assert nobody.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"] == arn
    assert error_of(lambda: nobody.list_shards(StreamName=name)) == denied(NOBODY, "kinesis:ListShards", arn, "identity")
    # DeleteResourcePolicy lifts them.
    olive.delete_resource_policy(ResourceARN=arn)
    writer.put_record(StreamName=name, Data=b"after", PartitionKey="k")
    assert error_of(lambda: nobody.describe_stream_summary(StreamName=name))[0] == "AccessDeniedException"


def test_put_resource_policy_refuses_what_could_not_be_enforced(server):
    olive = client(server, OLIVE)
    arn = stream_arn(create_stream(olive, shards=1))
    no_principal = policy(allow("kinesis:GetRecords"))
    code, message, _ = error_of(lambda: olive.put_resource_policy(ResourceARN=arn, Policy=json.dumps(no_principal)))
    assert code == "InvalidArgumentException" and "Principal" in message, message
    bad_effect = policy({"Effect": "Perhaps", "Principal": "*", "Action": "kinesis:*", "Resource": "*"})
    code, message, _ = error_of(lambda: olive.put_resource_policy(ResourceARN=arn, Policy=json.dumps(bad_effect)))
    assert code == "InvalidArgumentException" and "Effect" in message, message


def test_an_edited_policy_applies_without_a_restart(server, creds_path):
    nobody = client(server, NOBODY)
    assert error_of(nobody.list_streams)[0] == "AccessDeniedException"
    edited = dict(NOBODY, policies=[policy(allow("kinesis:ListStreams"))])
    creds_path.write_text(credentials_toml(*[u for u in USERS if u is not NOBODY], edited))
    poll(lambda: _works(nobody.list_streams), timeout=15, what="nobody's new policy to apply")
    # A malformed policy is a configuration error naming the user; the previous file stays.
    broken = dict(NOBODY, policies=[{"Statement": {"Effect": "Allow", "Action": "kinesis:*"}}])
    creds_path.write_text(credentials_toml(*[u for u in USERS if u is not NOBODY], broken))
    poll(lambda: "user \\\"nobody\\\"'s policy is not a valid IAM policy" in log_of(server)
         or "user \"nobody\"'s policy is not a valid IAM policy" in log_of(server),
         timeout=15, what="the bad policy to be reported")
    assert _works(nobody.list_streams)
    creds_path.write_text(credentials_toml(*USERS))
    poll(lambda: not _works(nobody.list_streams), timeout=15, what="nobody's policy to be gone")



def test_consumer_operations_act_on_the_consumer_arn(server):
    olive, reader, bea = (client(server, u) for u in (OLIVE, READER, BEA))
    name = create_stream(olive, shards=1)
    consumer = olive.register_stream_consumer(StreamARN=stream_arn(name), ConsumerName="app")["Consumer"]
    carn = consumer["ConsumerARN"]
    poll(lambda: olive.describe_stream_consumer(ConsumerARN=carn)["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE",
         timeout=10, what="the consumer to be ACTIVE")
    # reader's describe* on stream/* covers the stream's consumers: their ARNs are below it.
    assert reader.describe_stream_consumer(ConsumerARN=carn)["ConsumerDescription"]["ConsumerName"] == "app"
    assert error_of(lambda: reader.deregister_stream_consumer(ConsumerARN=carn)) == denied(
        READER, "kinesis:DeregisterStreamConsumer", carn, "identity")
    # Another account's user needs the consumer's own resource policy.
    assert error_of(lambda: bea.describe_stream_consumer(ConsumerARN=carn))[0] == "AccessDeniedException"
    grant = policy({"Effect": "Allow", "Principal": {"AWS": B}, "Action": "kinesis:DescribeStreamConsumer",
                    "Resource": carn})
    olive.put_resource_policy(ResourceARN=carn, Policy=json.dumps(grant))
    # bea's identity policy does not allow DescribeStreamConsumer: both sides must.
    assert error_of(lambda: bea.describe_stream_consumer(ConsumerARN=carn)) == denied(
        BEA, "kinesis:DescribeStreamConsumer", carn, "identity")


def test_secure_transport_conditions_see_the_tls_listener(tmp_path_factory):
    ca = Ca(tmp_path_factory.mktemp("policy-ca"))
    tls_only = user("tlsonly", A, [policy({"Effect": "Allow", "Action": "kinesis:ListStreams", "Resource": "*",
                                           "Condition": {"Bool": {"aws:SecureTransport": "true"}}})])
    path = tmp_path_factory.mktemp("tls-creds") / "credentials.toml"
    path.write_text(credentials_toml(tls_only))
    s = Server(tmp_path_factory.mktemp("kinesin-policies-tls"), tls=ca.server_files("policies"),
               extra_args=["--credentials", str(path)])
    try:
        s.start()

        def over(endpoint):
            return boto3.session.Session().client(
                "kinesis", endpoint_url=endpoint, region_name=REGION, verify=s.ca_bundle,
                aws_access_key_id=tls_only["key"], aws_secret_access_key=tls_only["secret"],
                config=Config(retries={"total_max_attempts": 1}))

        assert "StreamNames" in over(s.tls_endpoint).list_streams()
        assert error_of(over(s.plain_endpoint).list_streams) == denied(tls_only, "kinesis:ListStreams", None, "identity")
    finally:
        s.cleanup()
