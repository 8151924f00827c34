## The demo scene (res://scenes/demo.tscn) unchanged, except that its gateway accepts thousands of
## connections from one address: scripts/load-bench's bots all come from 127.0.0.1, and the
## default allows 64 per address (a limit with no command-line override). Served with
## `scripts/serve --scene res://bench/load_server.tscn` and that script's other options.
extends Node

## Connections allowed from one address: nexus-bots opens at most 5,000.
const MAX_CONNECTIONS_PER_ADDRESS := 5000
## Connections allowed in all.
const MAX_CONNECTIONS := 10000

const DEMO := preload("res://scenes/demo.tscn")


func _ready() -> void:
	var demo := DEMO.instantiate()
	# Set before the demo enters the tree: the gateway starts (and reads its limits) when ready.
	var gateway: NexusGateway = demo.get_node("Gateway")
	gateway.max_connections_per_address = MAX_CONNECTIONS_PER_ADDRESS
	gateway.max_connections = MAX_CONNECTIONS
	add_child(demo)
