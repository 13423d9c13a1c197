# tradingsite web image: gunicorn serving tradingsite.wsgi (see gunicorn.conf.py).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings but no secrets of the real deployment.
RUN DJANGO_DEBUG=false DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=localhost \
    JWT_SIGNING_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 app && chown -R app /app
USER app

EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "tradingsite.wsgi:application"]
