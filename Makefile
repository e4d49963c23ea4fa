# A thin front door: installs what is missing, then hands over to meson.
BUILD ?= build
SANBUILD ?= build-sanitize
TSANBUILD ?= build-tsan
PORTBUILD ?= build-portable
FUZZBUILD ?= build-fuzz
MESON ?= meson
# Seconds each fuzz target runs: 30 under `make test`, 600 under `make fuzz`.
FUZZ_SECONDS ?=
# Where `make fuzz` keeps the inputs it finds, outside the repository.
FUZZ_CORPUS ?= /var/tmp/tickwheel-fuzz

PACKAGES := g++ binutils pkg-config meson ninja-build libevent-dev libev-dev libuv1-dev \
	libsimde-dev libcmocka-dev hyperfine mandoc clang libclang-rt-dev python3 cmake \
	gnuplot-nox jq libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev

.PHONY: all deps run test fuzz bench install clean

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@missing=""; for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
		echo "missing packages; run:"; echo "  sudo apt-get install$$missing"; exit 1; \
	fi

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD)

$(SANBUILD)/build.ninja:
	$(MESON) setup $(SANBUILD) -Dbuildtype=debugoptimized -Db_sanitize=address,undefined \
		-Db_lundef=false -Dc_args=-fno-sanitize-recover=all -Dcpp_args=-fno-sanitize-recover=all

$(TSANBUILD)/build.ninja:
	$(MESON) setup $(TSANBUILD) -Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false

# SIMDe's portable C instead of native intrinsics, in every kernel variant.
$(PORTBUILD)/build.ninja:
	$(MESON) setup $(PORTBUILD) -Dc_args=-DSIMDE_NO_NATIVE -Dcpp_args=-DSIMDE_NO_NATIVE

# clang with libFuzzer, ASan and UBSan; builds the library and test/fuzz only.
$(FUZZBUILD)/build.ninja:
	CC=clang CXX=clang++ $(MESON) setup $(FUZZBUILD) -Dfuzz=true -Dbuildtype=debugoptimized \
		-Db_lundef=false

run: deps all
	$(BUILD)/tools/tw-sim

test: deps all $(SANBUILD)/build.ninja $(TSANBUILD)/build.ninja $(PORTBUILD)/build.ninja \
		$(FUZZBUILD)/build.ninja
	ninja -C $(SANBUILD)
	ninja -C $(TSANBUILD) test/test-inbox test/test-loop test/test-worker test/test-conn
	ninja -C $(PORTBUILD)
	ninja -C $(FUZZBUILD) fuzz
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),30) FUZZ_ARTIFACTS=$(CURDIR)/$(FUZZBUILD)/artifacts \
		test/run-suites.sh $(BUILD) $(SANBUILD) $(TSANBUILD):inbox,loop,worker,conn $(PORTBUILD) \
		$(FUZZBUILD)

# Each fuzz target for longer, adding what it finds to $(FUZZ_CORPUS).
fuzz: deps $(FUZZBUILD)/build.ninja
	ninja -C $(FUZZBUILD) fuzz
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),600) FUZZ_CORPUS=$(FUZZ_CORPUS) \
		FUZZ_ARTIFACTS=$(FUZZ_CORPUS)/artifacts test/run-suites.sh $(FUZZBUILD)

bench: deps all
	tools/bench.sh $(BUILD)/tools/tw-bench

# Into PREFIX (meson's default, /usr/local, when not given; a given one
# stays set in $(BUILD)), staged under DESTDIR when given.
install: $(BUILD)/build.ninja
	$(if $(PREFIX),$(MESON) configure $(BUILD) -Dprefix=$(abspath $(PREFIX)))
	ninja -C $(BUILD)
	$(MESON) install -C $(BUILD) --no-rebuild $(if $(DESTDIR),--destdir $(abspath $(DESTDIR)))

clean:
	rm -rf $(BUILD) $(SANBUILD) $(TSANBUILD) $(PORTBUILD) $(FUZZBUILD)
