# The two setup commands (see README.md): `make demo` and `make test`.
# `make fuzz` and `make soak` are the long fault runs (docs/faults.md).
SWIFT ?= swift
QCODE := .build/release/qcode
DEMO_FLAGS ?=

.PHONY: bootstrap bootstrap-test build demo test fuzz soak bench clean

bootstrap:
	@scripts/bootstrap

# The real-model tests run the 0.5B model (fast enough for CI); the product
# default is the 1.5B (`make demo`, `qcode solve`).
bootstrap-test:
	@QCODE_MODEL=0.5b scripts/bootstrap

build: bootstrap
	$(SWIFT) build -c release

# Solve every example (the task files, then the three function stubs, which
# stay unchanged: no --write) end to end with the embedded model and the real jail,
# through the daemon, with the default settings. `qcode solve` exits 1 when the
# model's program fails its tests (an answer, not a crash) and 2 on an error:
# only the latter fails the demo.
demo: build
	@status=0; for task in examples/*/task.json; do \
	  echo "=== $$task"; \
	  $(QCODE) solve $$task $(DEMO_FLAGS); rc=$$?; \
	  if [ $$rc -gt 1 ]; then echo "demo: qcode solve $$task crashed (exit $$rc)"; status=1; fi; \
	  echo; \
	done; \
	for stub in textstats/textstats.py:top_words slugs/slugs.py:slugify deploy_config/deploy_config.py:parse_bool; do \
	  echo "=== examples/$${stub%%:*} --function $${stub##*:}"; \
	  $(QCODE) solve examples/$${stub%%:*} --function $${stub##*:} $(DEMO_FLAGS); rc=$$?; \
	  if [ $$rc -gt 1 ]; then echo "demo: qcode solve examples/$${stub%%:*} crashed (exit $$rc)"; status=1; fi; \
	  echo; \
	done; \
	$(QCODE) stop >/dev/null 2>&1 || true; \
	if [ $$status -ne 0 ]; then echo "demo: FAILED (see the errors above)"; exit 1; fi; \
	echo "demo finished (a FAIL above is the model's wrong answer, not a crash)"

test: bootstrap-test
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

# The protocol fuzzer at length (`make test` runs it for 3000 frames with seed 1):
# FUZZ_FRAMES generated frames from seed FUZZ_SEED; the seed is printed, and
# the same seed and count reproduce a failure.
FUZZ_FRAMES ?= 200000
FUZZ_SEED ?= 7
fuzz: bootstrap-test
	$(SWIFT) build --build-tests
	FUZZ_FRAMES=$(FUZZ_FRAMES) FUZZ_SEED=$(FUZZ_SEED) $(SWIFT) test --skip-build --no-parallel --filter ProtocolFuzzTests

# Long running (not part of `make test`): SOAK_REQUESTS requests (status, check,
# test, solves against a scripted endpoint) from SOAK_CLIENTS clients against a
# `qcode serve`; its fds, threads, RSS and children must return to baseline.
SOAK_REQUESTS ?= 10000
SOAK_CLIENTS ?= 32
soak: bootstrap-test
	$(SWIFT) build --build-tests
	SOAK_REQUESTS=$(SOAK_REQUESTS) SOAK_CLIENTS=$(SOAK_CLIENTS) $(SWIFT) test --skip-build --no-parallel --filter SoakTests

bench: build
	scripts/bench

clean:
	rm -rf .build
