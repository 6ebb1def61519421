"""The lane's seed: Authentik itself pushed the users and CF- groups, so its links exist."""

from . import world as lane


def test_authentik_pushes_the_cf_groups_as_virtual_groups_and_links_them(authentik):
    world = lane.build(authentik)
    try:
        cf = world.cf
        roles = lane.roles_by_email(cf)
        for email, wanted in lane.PEOPLE.items():
            assert roles[email] == set(wanted), email
        assert roles[lane.BREAK_GLASS] == {lane.SUPER}  # directly in Cloudflare, not through SCIM
        with cf.state.lock:
            system = {g["displayName"]: gid for gid, g in cf.state.scim_groups.items()}
            assert lane.BREAK_GLASS not in {u["userName"] for u in cf.state.scim_users.values()}
        assert set(system) == set(world.group_names.values())
        links = {link["group_obj"]["name"]: link["scim_id"] for link in authentik.group_links(world.provider_pk)}
        assert {name: links[name] for name in system} == system  # linked to the very system groups
        user_links = {link["user_obj"]["username"] for link in authentik.user_links(world.provider_pk)}
        assert user_links == set(lane.PEOPLE)
        assert not cf.state.before_end_of_life  # end of life again: a CF- push is refused from here on
    finally:
        world.cf.stop()
