# Entry points. `make test` is the test command CI runs; `make run` serves the origin locally.
.PHONY: run test test-rust build

run:
	cargo run --release -p counter-origin

build:
	cargo build --release -p counter-origin

test:
	scripts/test.sh

test-%:
	scripts/test.sh $*
