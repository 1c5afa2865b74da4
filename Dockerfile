# Image for web, worker, beat and the optional emulator (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    COGNITO_ADMIN_VAR_DIR=/app/var

WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app
COPY --chown=app:app . .
RUN mkdir -p /app/var && chown app:app /app/var

USER app
# The admin's static files, served by WhiteNoise (build-time key only; not used at run time).
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput

EXPOSE 8000
CMD ["gunicorn", "cognito_admin.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
