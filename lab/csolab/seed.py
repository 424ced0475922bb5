"""Seed the lab with a network that mirrors production, and today's (weak) database.

Today's state (seed 000): a VPC with private subnets, a DB subnet group, one "core servers"
security group shared by the database and every app server, an RDS MySQL 8.0.42 instance
encrypted with the default ``aws/rds`` key, no IAM authentication, default parameter group.
"""

VPC_CIDR = "10.20.0.0/16"
PRIVATE_SUBNETS = (("a", "10.20.1.0/24"), ("b", "10.20.2.0/24"), ("c", "10.20.3.0/24"))
DB_SUBNET_GROUP = "cso-db-private"
APP_SERVER_GROUPS = ("keystone", "cso", "rabbitmq")
LAB_DB_INSTANCE = "cso-lab-db"
LAB_DB_MASTER_USER = "admin"
LAB_DB_MASTER_PASSWORD = "lab-master-password-1"  # lab only


def _tag(name):
    return [{"Key": "Name", "Value": name}, {"Key": "Environment", "Value": "lab"}]


def seed_network(lab, region):
    ec2 = lab.boto3("ec2", region)
    rds = lab.boto3("rds", region)
    vpc_id = ec2.create_vpc(
        CidrBlock=VPC_CIDR, TagSpecifications=[{"ResourceType": "vpc", "Tags": _tag("cso-lab")}]
    )["Vpc"]["VpcId"]
    subnet_ids = [
        ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=cidr,
            AvailabilityZone=f"{region}{zone}",
            TagSpecifications=[{"ResourceType": "subnet", "Tags": _tag(f"cso-private-{zone}")}],
        )["Subnet"]["SubnetId"]
        for zone, cidr in PRIVATE_SUBNETS
    ]
    rds.create_db_subnet_group(
        DBSubnetGroupName=DB_SUBNET_GROUP,
        DBSubnetGroupDescription="CSO private subnets",
        SubnetIds=subnet_ids,
    )
    core_sg = ec2.create_security_group(
        GroupName="core-servers", Description="Shared by the core servers and the database", VpcId=vpc_id
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=core_sg,
        IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": core_sg}]},
                       {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306,
                        "IpRanges": [{"CidrIp": VPC_CIDR, "Description": "anything in the VPC"}]}],
    )
    app_sgs = {
        name: ec2.create_security_group(
            GroupName=f"{name}-servers", Description=f"{name} application servers", VpcId=vpc_id
        )["GroupId"]
        for name in APP_SERVER_GROUPS
    }
    return {
        "vpc_id": vpc_id,
        "subnet_ids": subnet_ids,
        "db_subnet_group": DB_SUBNET_GROUP,
        "core_security_group_id": core_sg,
        "app_security_group_ids": app_sgs,
    }


def seed_host_interfaces(lab, region, network):
    """The lab's hosts as EC2 network interfaces in the first private subnet, at their VPC
    addresses, in today's security groups (each app host in its own group and the shared core
    group; the outsider in the VPC's default group, as AWS gives an interface no group list).
    The data plane's firewall and phase 1's membership preflight read the membership from here."""
    from csolab.dataplane.net import vpc_ip
    from csolab.hosts.topology import HOSTS

    ec2 = lab.boto3("ec2", region)
    interfaces = {}
    for name, host in HOSTS.items():
        groups = ([network["app_security_group_ids"][host["kind"]], network["core_security_group_id"]]
                  if host["kind"] in network["app_security_group_ids"] else [])
        interfaces[name] = ec2.create_network_interface(
            SubnetId=network["subnet_ids"][0], PrivateIpAddress=vpc_ip(host), Description=name,
            **({"Groups": groups} if groups else {}),
            TagSpecifications=[{"ResourceType": "network-interface", "Tags": _tag(name)}],
        )["NetworkInterface"]["NetworkInterfaceId"]
    return interfaces


def seed_database(lab, region, network):
    """Today's production database: default KMS key, shared SG, no IAM auth."""
    rds = lab.boto3("rds", region)
    rds.create_db_instance(
        DBInstanceIdentifier=LAB_DB_INSTANCE,
        Engine="mysql",
        EngineVersion="8.0.42",
        DBInstanceClass="db.t3.large",
        AllocatedStorage=50,
        MaxAllocatedStorage=1000,
        StorageType="gp3",
        StorageEncrypted=True,
        MasterUsername=LAB_DB_MASTER_USER,
        MasterUserPassword=LAB_DB_MASTER_PASSWORD,
        DBSubnetGroupName=network["db_subnet_group"],
        VpcSecurityGroupIds=[network["core_security_group_id"]],
        BackupRetentionPeriod=7,
        PreferredBackupWindow="02:00-03:00",
        PreferredMaintenanceWindow="sun:04:00-sun:05:00",
        MultiAZ=False,
        PubliclyAccessible=False,
        Tags=_tag(LAB_DB_INSTANCE),
    )
    return {"db_instance_identifier": LAB_DB_INSTANCE, "master_username": LAB_DB_MASTER_USER}


def seed_all(lab, with_database=True):
    seeded = {"network": seed_network(lab, lab.region), "dr_network": seed_network(lab, lab.state["dr_region"])}
    seeded["host_interfaces"] = seed_host_interfaces(lab, lab.region, seeded["network"])
    if with_database:
        seeded["database"] = seed_database(lab, lab.region, seeded["network"])
    return seeded
