# Trainyard's authorization policy. Every check of the pages, the htmx fragments and
# the JSON API is decided here, from the permission names of docs/design.md §3 and the
# roles a user holds globally or for one template.
#
# Resources: `Template` (a template and its processes; id nil stands for "any
# template the user holds no grant for") and `System` (what belongs to no template:
# creating and editing templates, machines, users, roles, the audit log, notification
# channels).

# Permissions a template-scoped grant can carry; every other permission is global.
scopable("templates.view");
scopable("processes.view");
scopable("processes.create");
scopable("processes.manage");
scopable("processes.delete");

# A permission the user holds: through a global grant, or through a grant for that
# very template when the permission can be scoped at all.
holds(user: User, name: String, _resource) if
  name in user.global;
holds(user: User, name: String, template: Template) if
  scopable(name) and
  name in user.grantedFor(template.id);

allow(user: User, "templates.view", template: Template) if
  holds(user, "templates.view", template);

# Every process page shows its template, so process permissions need it in sight too.
allow(user: User, name: String, template: Template) if
  name in ["processes.view", "processes.create", "processes.manage", "processes.delete"] and
  holds(user, name, template) and
  holds(user, "templates.view", template);

allow(user: User, name: String, system: System) if
  name in ["templates.manage", "machines.view", "machines.manage", "users.manage", "notifications.manage"] and
  holds(user, name, system);
