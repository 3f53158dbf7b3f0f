"""moto_server with two small STAND-INS for what moto 5.2 cannot play (package awstest).

moto 5.2's CloudFormation creates an AWS::EC2::Instance only from an ImageId
property; real CloudFormation also launches one from its LaunchTemplate, as
spinbook's instance stack does. This wraps moto's handler so that an instance
with a LaunchTemplate and no ImageId is launched by moto's own RunInstances
from that template (image, type, profile, groups, user data, tags), which moto
supports.

Real CloudFormation refuses to delete a stack while another stack imports one
of its exports (the stack ends DELETE_FAILED, naming the export and the
importer); moto deletes it regardless. The second stand-in makes moto's
DeleteStack refuse that way, leaving the stack and its resources as they are.

moto's CloudFormation leaves an AWS::ECS::Service ACTIVE when its stack is
deleted; the third makes the delete stop it as ECS's DeleteService (forced)
does, so that the instance stand-in stops its task. Nor does it delete an
AWS::EC2::RouteTable, which keeps the site's VPC (DependencyViolation); the
fourth deletes it as EC2's DeleteRouteTable does.

moto's UpdateStack fails (KeyError) on UsePreviousValue for a parameter the
stack took its Default for (the instance stack's ImageId); the fifth lets such
a parameter keep its default, as it was. Nor does an update whose template is
unchanged modify a resource that names a changed parameter only inside
Fn::Sub (the task definition's spec secret version), or the resources naming a
modified one (the service); the sixth marks both, as CloudFormation does. And
moto's update of an AWS::ECS::TaskDefinition registers the new revision with
its container definitions' keys as the template spells them (EntryPoint, not
entryPoint), so the revision has no command; the seventh converts them as
moto's create does.
Nothing else of moto is changed.

Run as: python standin_server.py [moto_server's arguments]
"""

import json
import re
import sys

from moto.cloudformation.models import CloudFormationBackend
from moto.cloudformation.parsing import ResourceMap
from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import Instance
from moto.ec2.models.route_tables import RouteTable
from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ecs.models import Service, TaskDefinition, ecs_backends
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

_moto_delete_stack = CloudFormationBackend.delete_stack


def _imports(value):
    """The export names value (a template) imports by name."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Fn::ImportValue" and isinstance(item, str):
                yield item
            else:
                yield from _imports(item)
    elif isinstance(value, list):
        for item in value:
            yield from _imports(item)


def _delete_stack(self, name_or_stack_id):
    stack = self.stacks.get(name_or_stack_id) or next(
        (s for s in self.stacks.values() if s.name == name_or_stack_id), None
    )
    if stack is not None:
        exports = {export.name for export in stack.exports}
        for other in self.stacks.values():
            if other is stack or other.status == "DELETE_COMPLETE":
                continue
            used = sorted(exports.intersection(_imports(other.template_dict)))
            if used:
                reason = f"Export {used[0]} cannot be deleted as it is in use by {other.name}"
                stack.status = "DELETE_FAILED"
                stack.stack_status_reason = reason
                stack._add_stack_event("DELETE_FAILED", resource_status_reason=reason)
                return None
    return _moto_delete_stack(self, name_or_stack_id)


CloudFormationBackend.delete_stack = _delete_stack


def _delete_service(cls, resource_name, cloudformation_json, account_id, region_name):
    backend = ecs_backends[account_id][region_name]
    for service in list(backend.services.values()):
        if resource_name in (service.arn, service.name) and service.status == "ACTIVE":
            backend.delete_service(service.cluster_name, service.name, force=True)


Service.delete_from_cloudformation_json = classmethod(_delete_service)


def _delete_route_table(cls, resource_name, cloudformation_json, account_id, region_name):
    ec2_backends[account_id][region_name].delete_route_table(resource_name)


RouteTable.delete_from_cloudformation_json = classmethod(_delete_route_table)

_moto_resolve_update = CloudFormationBackend._resolve_update_parameters


def _resolve_update(self, instance, incoming_params):
    known = [
        p for p in incoming_params
        if not p.get("UsePreviousValue", False) or p["ParameterKey"] in instance.parameters
    ]
    return _moto_resolve_update(self, instance, known)


CloudFormationBackend._resolve_update_parameters = _resolve_update

_moto_diff = ResourceMap.build_resource_diff


def _names(value):
    """What value names: Ref, GetAtt and ${NAME} of Fn::Sub."""
    text = json.dumps(value)
    return set(re.findall(r'"Ref": "([^"]+)"', text)) | set(re.findall(r'"Fn::GetAtt": \["([^"]+)"', text)) | set(
        n.split(".")[0] for n in re.findall(r"\$\{([^}!]+)\}", text)
    )


def _diff(self, other_template, parameters=None):
    actions = _moto_diff(self, other_template, parameters)
    new = other_template["Resources"]
    changed = {p for p in (parameters or {}) if self.input_parameters.get(p) != parameters[p]}
    modified = set(actions["Modify"]) | set(actions["Add"])
    grew = True
    while grew:
        grew = False
        for name, body in new.items():
            if name in modified or name not in self._resource_json_map:
                continue
            if _names(body) & (changed | modified):
                actions["Modify"].append(name)
                modified.add(name)
                grew = True
    return actions


ResourceMap.build_resource_diff = _diff

_moto_update_td = TaskDefinition.update_from_cloudformation_json.__func__


def _update_td(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
    properties = dict(cloudformation_json["Properties"])
    for key in ("ContainerDefinitions", "Volumes"):
        if key in properties:
            properties[key] = remap_nested_keys(properties[key], pascal_to_camelcase)
    return _moto_update_td(
        cls, original_resource, new_resource_name, dict(cloudformation_json, Properties=properties), account_id, region_name
    )


TaskDefinition.update_from_cloudformation_json = classmethod(_update_td)

if __name__ == "__main__":
    sys.exit(main())
