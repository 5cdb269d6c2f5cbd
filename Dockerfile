# The project's Airflow image: the official image plus the project's pinned lock.
# The FROM tag must equal the apache-airflow pin in requirements.txt (tests/integration/test_compose.py).
FROM apache/airflow:3.3.2-python3.11

COPY requirements.txt /requirements.txt
# Naming apache-airflow again keeps pip from moving Airflow while it resolves the lock.
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /requirements.txt

# A named volume starts with the owner and mode of the image's folder: let the airflow user,
# or any UID in group 0, write the emulator's data there.
RUN mkdir -p /opt/airflow/emulator && chmod g+w /opt/airflow/emulator
