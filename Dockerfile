# The recommender as a SageMaker bring-your-own container. SageMaker runs
# `docker run IMAGE train` (hyperparameters.json and the train channel under /opt/ml/input,
# the model folder to /opt/ml/model, a failure reason to /opt/ml/output/failure) and
# `docker run IMAGE serve` (GET /ping and POST /invocations on port 8080).
# Build: docker build -t boson-recommender .
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --example recommender

FROM debian:bookworm-slim
COPY --from=build /src/target/release/examples/recommender /usr/local/bin/recommender
# serve reads the model SageMaker unpacked into /opt/ml/model and listens on all interfaces.
ENV SM_MODEL_DIR=/opt/ml/model BOSON_SERVE_HOST=0.0.0.0
EXPOSE 8080
ENTRYPOINT ["recommender"]
