"""The wire: sans-IO protocol, interfaces, server, clients and CLI. Imports core, never the reverse."""
