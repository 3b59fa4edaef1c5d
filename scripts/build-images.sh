#!/usr/bin/env bash
# Builds the mcpgw images and, with `push`, pushes them to Amazon ECR.
#   scripts/build-images.sh build   docker build each image as mcpgw/<image>:<tag>
#   scripts/build-images.sh push    build, then push to <REGISTRY>/<REPO_PREFIX>/<image>:<tag>
# Images: registry, auth-server, gateway, setup (services/<image>/Dockerfile); IMAGE=<name> builds
# one. The tag is <version>-<git short sha> (version from the workspace Cargo.toml), the same for
# every image of one commit, so it is immutable: a tag is never moved to other content.
# Settings (environment):
#   IMAGE        one image instead of all
#   TAG          override the tag (refused: latest, unless FORCE=1)
#   AWS_REGION   push: the ECR region (required; no default on purpose)
#   REGISTRY     push: the registry host; default <account>.dkr.ecr.<AWS_REGION>.amazonaws.com
#                with the account of the current AWS credentials
#   REPO_PREFIX  push: repository name prefix; default mcpgw (repositories mcpgw/registry, …,
#                created by Terraform's ECR module)
#   FORCE=1      push a dirty tree or the tag latest anyway
#   BINARIES_DIR build from binaries built outside instead of compiling in the image build: a
#                directory with registry, auth-server, gateway and mcpgw-setup, static
#                (x86_64-unknown-linux-musl); the Dockerfiles' BINARIES=prebuilt stage takes
#                them and the runtime stage is the same (scripts/compose-test.sh uses this)
# BuildKit is needed (the Dockerfiles' cache mounts): through buildx where the CLI has it, else
# the built-in BuildKit of a Docker 20.10 CLI (Debian's docker.io), which needs no buildx.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

ALL_IMAGES=(registry auth-server gateway setup)
mode=${1:-}
[[ $mode == build || $mode == push ]] || die "usage: scripts/build-images.sh build|push (IMAGE=, TAG=, AWS_REGION=, REGISTRY=, REPO_PREFIX=, FORCE=1)"

if [[ -n ${IMAGE:-} ]]; then
  [[ " ${ALL_IMAGES[*]} " == *" $IMAGE "* ]] || die "IMAGE=$IMAGE is not an image; images: ${ALL_IMAGES[*]}"
  images=("$IMAGE")
else
  images=("${ALL_IMAGES[@]}")
fi

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[[ -n $version ]] || die "no version in [workspace.package] of Cargo.toml"
revision=$(git rev-parse HEAD 2>/dev/null) || die "not a git checkout: the tag needs the commit"
short=$(git rev-parse --short=12 HEAD)
dirty=""
[[ -z $(git status --porcelain --untracked-files=no) ]] || dirty=1
tag=${TAG:-$version-$short}
# The image's creation time is the commit's, so rebuilding one commit gives the same labels.
created=$(git show -s --format=%cI HEAD)

# Refusals first: they need no Docker engine.
if [[ $tag == latest ]] && [[ ${FORCE:-} != 1 ]]; then
  die "refusing the tag 'latest': tags must be immutable (<version>-<git sha>); FORCE=1 overrides"
fi
if [[ -n $dirty ]]; then
  if [[ $mode == push && ${FORCE:-} != 1 ]]; then
    git status --short --untracked-files=no >&2
    die "refusing to push from a dirty tree (above): the tag $tag would not name what was built; commit first, or FORCE=1"
  fi
  # A dirty build never carries a clean commit's tag.
  [[ -n ${TAG:-} ]] || tag="$tag-dirty-$(date -u +%Y%m%d%H%M%S)"
fi

command -v docker >/dev/null || die "docker is not installed; install Docker Engine (or Docker Desktop) and re-run"
if ! docker info >/dev/null 2>&1; then
  why=$({ docker info 2>&1 || true; } | grep -m1 -iE 'error|cannot' || true)
  die "no Docker engine answers ('docker info' failed${why:+: $why}); start Docker (or set DOCKER_HOST) and re-run"
fi

# Since Docker 23 `docker build` is buildx's; an older CLI has BuildKit built in
# (DOCKER_BUILDKIT=1). A newer CLI without the buildx plugin has only the classic builder, which
# cannot build these Dockerfiles (RUN --mount): say so instead of failing half-way.
if docker buildx version >/dev/null 2>&1; then
  build=(docker buildx build --load)
else
  cli=$(docker version -f '{{.Client.Version}}' 2>/dev/null || echo 0)
  ((${cli%%.*} < 23)) ||
    die "this docker CLI ($cli) has no buildx plugin, and without it there is no BuildKit, which the Dockerfiles need (RUN --mount): install buildx (Debian: docker-buildx; Docker's packages: docker-buildx-plugin), or use a Docker 20.10 CLI (Debian's docker.io: /usr/bin/docker)"
  build=(env DOCKER_BUILDKIT=1 docker build)
fi

binary_of() { if [[ $1 == setup ]]; then echo mcpgw-setup; else echo "$1"; fi; }

# context_of IMAGE: the build context. The repository, or with BINARIES_DIR one holding just
# what the Dockerfile's prebuilt stage and runtime stage copy (out/, deploy/certs/).
context_of() {
  [[ -n ${BINARIES_DIR:-} ]] || { echo .; return; }
  local bin ctx=$MCPGW_CACHE_DIR/image-context/$1
  bin=$(binary_of "$1")
  [[ -x $BINARIES_DIR/$bin ]] || die "BINARIES_DIR=$BINARIES_DIR has no $bin"
  file "$BINARIES_DIR/$bin" | grep -qE 'static(-pie)? linked|statically linked' ||
    die "$BINARIES_DIR/$bin is not static: it would not start on distroless/static (build it with --target x86_64-unknown-linux-musl)"
  rm -rf "$ctx" && mkdir -p "$ctx/out/usr/local/bin" "$ctx/out/var/lib/mcpgw" "$ctx/out/run/mcpgw/secrets" "$ctx/deploy"
  cp "$BINARIES_DIR/$bin" "$ctx/out/usr/local/bin/$bin"
  cp -r deploy/certs "$ctx/deploy/certs"
  echo "$ctx"
}

build_one() {
  local image=$1 ctx
  ctx=$(context_of "$image")
  log "docker build mcpgw/$image:$tag (services/$image/Dockerfile${BINARIES_DIR:+, binaries from $BINARIES_DIR})"
  "${build[@]}" \
    -f "services/$image/Dockerfile" \
    ${BINARIES_DIR:+--build-arg BINARIES=prebuilt} \
    --build-arg "VERSION=$version" \
    --build-arg "REVISION=$revision" \
    --build-arg "CREATED=$created" \
    -t "mcpgw/$image:$tag" \
    "$ctx"
  log "mcpgw/$image:$tag: $(docker image inspect -f '{{.Size}}' "mcpgw/$image:$tag" | awk '{printf "%.1f MB", $1/1e6}')"
}

for image in "${images[@]}"; do build_one "$image"; done

if [[ $mode == build ]]; then
  log "built (tag $tag):"
  for image in "${images[@]}"; do echo "mcpgw/$image:$tag"; done
  exit 0
fi

[[ -n ${AWS_REGION:-} ]] || die "AWS_REGION is not set: the ECR region to push to (e.g. AWS_REGION=eu-west-1 make build-push)"
command -v aws >/dev/null || die "the AWS CLI (aws) is not installed; it logs docker in to ECR"
if [[ -z ${REGISTRY:-} ]]; then
  account=$(aws sts get-caller-identity --query Account --output text) ||
    die "could not read the AWS account (aws sts get-caller-identity); check the credentials, or set REGISTRY"
  REGISTRY="$account.dkr.ecr.$AWS_REGION.amazonaws.com"
fi
prefix=${REPO_PREFIX:-mcpgw}
log "docker login $REGISTRY (aws ecr get-login-password)"
aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "$REGISTRY" >/dev/null ||
  die "ECR login to $REGISTRY failed; check AWS_REGION, the credentials (ecr:GetAuthorizationToken) and REGISTRY"

pushed=()
for image in "${images[@]}"; do
  target="$REGISTRY/$prefix/$image:$tag"
  docker tag "mcpgw/$image:$tag" "$target"
  log "docker push $target"
  # ECR repositories with immutable tags refuse a tag that exists: that is the point.
  docker push "$target" >&2 ||
    die "pushing $target failed (does the repository $prefix/$image exist? is the tag $tag already there with other content?)"
  digest=$(docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$target" | grep -m1 "^$REGISTRY/$prefix/$image@") || digest=""
  pushed+=("$target${digest:+  ($digest)}")
done
log "pushed (tag $tag, commit $revision):"
printf '%s\n' "${pushed[@]}"
