# Sourced by scripts/lib.sh (which defines have and apt_install).
# GNU parallel, for the test that runs docs/sharding.md's commands as
# written (tests/cli_shard.rs): one of them shards with `parallel`.
have parallel || apt_install parallel
