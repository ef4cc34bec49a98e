# Entry points. `make test` is the test command CI runs; `make run` serves the origin locally.
.PHONY: run test test-rust build lint bench chaos profile

# Loopback only: a laptop's origin is not served to its network. The image and the cluster keep
# the 0.0.0.0 defaults. Either address can be overridden from the environment.
run:
	LISTEN_ADDR=$${LISTEN_ADDR:-127.0.0.1:8080} METRICS_ADDR=$${METRICS_ADDR:-127.0.0.1:9090} \
		cargo run --release -p counter-origin

build:
	cargo build --release -p counter-origin

test:
	scripts/test.sh

# The lint gate, exactly as CI's lint job runs it (ci.yml calls `make lint`, so the two cannot drift).
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

test-%:
	scripts/test.sh $*

# Side-by-side benchmark (origin batched / MAX_BATCH=1 / bare hyper / wrk): a few minutes,
# results in artifacts/bench/. Extra flags: make bench BENCH_ARGS="--rounds 5".
bench:
	scripts/bench.sh $(BENCH_ARGS)

# Fault suite: database outages, SIGKILL, rolling restart behind HAProxy, slow and malformed
# clients, secrets under failure, bounded fuzzing; a few minutes, figures in artifacts/chaos/.
chaos:
	scripts/chaos.sh $(CHAOS_ARGS)

# Where one request's user-space CPU goes: bare hyper GET, cached GET and batched POST under
# callgrind (instruction counts repeat on a busy machine); per-function splits in artifacts/profile/.
profile:
	scripts/profile.sh
