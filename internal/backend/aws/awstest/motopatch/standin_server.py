"""moto_server with the moto side of the INSTANCE STAND-IN (package awstest).

moto 5.2's CloudFormation creates an AWS::EC2::Instance only from an ImageId
property; real CloudFormation also launches one from its LaunchTemplate, as
spinbook's instance stack does. This wraps moto's handler so that an instance
with a LaunchTemplate and no ImageId is launched by moto's own RunInstances
from that template (image, type, profile, groups, user data, tags), which moto
supports. Nothing else of moto is changed.

Run as: python standin_server.py [moto_server's arguments]
"""

import sys

from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import Instance
from moto.server import main

_moto_create = Instance.create_from_cloudformation_json.__func__


def _create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    properties = cloudformation_json["Properties"]
    spec = properties.get("LaunchTemplate")
    if not spec or "ImageId" in properties:
        return _moto_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    backend = ec2_backends[account_id][region_name]
    template = {"LaunchTemplateId": spec["LaunchTemplateId"], "Version": str(spec.get("Version", "$Default"))}
    data = backend._get_template_from_args(template).data
    reservation = backend.run_instances(
        image_id=data.get("ImageId"),
        user_data=data.get("UserData"),
        count=1,
        security_group_names=[],
        instance_type=data.get("InstanceType", "m1.small"),
        is_instance_type_default=not data.get("InstanceType"),
        subnet_id=properties.get("SubnetId"),
        key_name=data.get("KeyName"),
        launch_template=template,
        security_group_ids=data.get("SecurityGroupIds", []),
    )
    instance = reservation.instances[0]
    for tag in properties.get("Tags", []):
        instance.add_tag(tag["Key"], tag["Value"])
    profile = (data.get("IamInstanceProfile") or {}).get("Name")
    if profile:
        backend.associate_iam_instance_profile(instance_id=instance.id, iam_instance_profile_name=profile)
    return instance


Instance.create_from_cloudformation_json = classmethod(_create)

if __name__ == "__main__":
    sys.exit(main())
