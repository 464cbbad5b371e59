# One image for Dataflow workers and the Flex Template launcher: Beam's Python SDK image plus ffmpeg (audio
# decoding for the embedding stage), this project's pinned requirements and code.
#   gcloud builds submit --tag REGION-docker.pkg.dev/PROJECT/audioset-beam/audioset-beam:latest .
# (./run_dataflow.sh template build does this and builds the template spec.)
FROM apache/beam_python3.11_sdk:2.77.0

RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*

# The Flex Template launcher, copied from Google's base image.
COPY --from=gcr.io/dataflow-templates-base/python311-template-launcher-base:latest \
     /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher

WORKDIR /template
COPY requirements.txt setup.py ./
RUN pip install --no-cache-dir -r requirements.txt
COPY pipelines/ pipelines/
COPY transforms/ transforms/
COPY sample_data/ontology.json sample_data/class_labels_indices.csv sample_data/
RUN pip install --no-cache-dir --no-deps .

ENV PYTHONPATH=/template
ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/pipelines/build_dataset.py
ENV FLEX_TEMPLATE_PYTHON_SETUP_FILE=/template/setup.py
# Workers start Beam's boot entrypoint (inherited); the launcher runs the file above.
