# icd on the CPU: the core, every plugin and the model-weight wheels, from the pinned
# requirements; `docker run IMAGE` runs the default job (MiniLM, spectral, 2:4) into /runs.
#
#   docker build -t icd .
#   docker run --rm -v "$PWD/runs:/runs" icd
#
# The build steps are release/container_build.sh, which CI also runs directly in a fresh
# directory. CUDA variant (the host's driver and the NVIDIA container toolkit are the
# user's; driver matching is not handled here): build with torch's CUDA index and run with
# the GPU, e.g.
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t icd:cuda .
#   docker run --rm --gpus all -v "$PWD/runs:/runs" icd:cuda icd run --workload minilm:device=cuda --out-dir /runs
# (Nsight Compute is not in the image: the ncu measure reports itself unavailable; NVML works.)
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    PATH=/opt/icd/bin:$PATH

WORKDIR /src
COPY . /src
RUN PYTHON=python3.11 TORCH_INDEX_URL="$TORCH_INDEX_URL" release/container_build.sh /opt/icd \
    && rm -rf /src

WORKDIR /work
VOLUME ["/runs"]
CMD ["icd", "run", "--solver", "spectral", "--adapter", "sparsity:2:4", "--out-dir", "/runs"]
