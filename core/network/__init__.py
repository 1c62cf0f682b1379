"""Networks: bridge networks through the CNI plugins, published ports, DNS between containers.

Kept free of imports: ``core.model`` takes its option Structs from ``.types``, and the
CLI must not pay for the rest.

    types.py    the Structs: a network, a container's network options, endpoints, sandboxes
    cni.py      a CNI plugin chain run as the CNI protocol says (argv/env/stdin in, result out)
    firewall.py each network's masquerade (iptables), and nf_tables' change notifications
    netns.py    named network namespaces under the daemon's run root
    ports.py    port specs, and the reservation of published host ports (held sockets)
    dns.py      aardvark-dns, driven through its configuration directory as netavark does
    etcfiles.py /etc/hosts, /etc/hostname and /etc/resolv.conf of each container
    store.py    networks, endpoints and sandboxes in SQLite
    checks.py   names, subnets, addresses, MACs; the host's routes and interfaces
    networks.py the public verbs (create, remove, connect, reload ...)
    part.py     NetworkPart: the hooks the engine calls in a container's life
"""
