# `sam build` (Metadata: BuildMethod: makefile in template.yaml) runs `make build-<LogicalId>`
# once per function, with ARTIFACTS_DIR set to that function's folder under .aws-sam/build.
#
# The first call builds every function of the template (arm64, provided.al2023), exactly what
# CI builds, in two `cargo lambda build` runs, one per release profile (see UNWINDING); the later
# calls find them built and only copy their `bootstrap`. One cargo run per profile shares the
# dependencies and the two cores between the functions, where one build per function
# (BuildMethod: rust-cargolambda) paid a full link each.
#
# Which binary a function runs is its Metadata.BuildProperties.Binary (also read by the local
# gateway and the OpenAPI check; the scripts ask `make -s binaries`). samconfig.toml builds in the source folder
# (build_in_source), so the target folder is not copied into a scratch folder per function.

TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BINARIES := $(shell sed -n 's/^ *Binary: *//p' template.yaml | sort -u)
# The functions whose panics unwind (they catch their codecs' panics: Cargo.toml) build with
# the `release` profile; every other one with `release-abort`, and without unwind tables, which
# nothing of theirs reads once a panic aborts (the panic's message and place are still logged;
# std's own tables stay). Cargo has no profile setting for that flag.
UNWINDING := thumbnailer transformer
UNWOUND := $(filter $(UNWINDING),$(BINARIES))
ABORTING := $(filter-out $(UNWINDING),$(BINARIES))
ABORT_RUSTFLAGS := -C force-unwind-tables=no
# What builds them: cargo lambda for arm64, as deployed. scripts/bench cold-start builds the same
# for the machine itself with BUILD="cargo build --target <host>".
BUILD := cargo lambda build --arm64

.PHONY: functions
functions:
	$(if $(UNWOUND),$(BUILD) --profile release $(CARGO_FLAGS) $(addprefix --bin ,$(UNWOUND)))
	$(if $(ABORTING),RUSTFLAGS="$(ABORT_RUSTFLAGS)" $(BUILD) --profile release-abort $(CARGO_FLAGS) \
	  $(addprefix --bin ,$(ABORTING)))

# `make -s binaries`: every function's binary, one per line (scripts/test, scripts/bench).
.PHONY: binaries
binaries:
	@printf '%s\n' $(BINARIES)

# `make profile-<binary>`: the profile it deploys with (where scripts/bench cold-start finds it).
profile-%:
	@echo $(if $(filter $*,$(UNWINDING)),release,release-abort)

build-%: functions
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: sam build sets it" >&2; exit 1; }
	@bin=$$(awk -v id='  $*:' '$$0 == id {f = 1; next} f && /^  [A-Za-z]/ {exit} f && $$1 == "Binary:" {print $$2; exit}' template.yaml); \
	  test -n "$$bin" || { echo "template.yaml: $* has no Metadata.BuildProperties.Binary" >&2; exit 1; }; \
	  cp "$(TARGET_DIR)/lambda/$$bin/bootstrap" "$(ARTIFACTS_DIR)/bootstrap"
