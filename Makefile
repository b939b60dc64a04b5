# The two setup commands (see README.md): `make demo` and `make test`.
SWIFT ?= swift
QCODE := .build/release/qcode
DEMO_FLAGS ?= --method qstar

.PHONY: bootstrap build demo test bench clean

bootstrap:
	@scripts/bootstrap

build: bootstrap
	$(SWIFT) build -c release

# Solve every example end to end with the embedded model and the real jail.
demo: build
	@status=0; for task in examples/*/task.json; do \
	  echo "=== $$task"; \
	  $(QCODE) solve $$task $(DEMO_FLAGS) || status=1; \
	  echo; \
	done; \
	$(QCODE) stop >/dev/null 2>&1 || true; \
	echo "demo finished (a FAIL above is the model's, not a crash)"

test: bootstrap
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

bench: build
	scripts/bench

clean:
	rm -rf .build
