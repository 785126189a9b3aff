"""twofa domain and service layer. Knows neither Celery nor (outside `services.api`) HTTP."""
