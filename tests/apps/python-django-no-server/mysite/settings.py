SECRET_KEY = "not-secret-test-app"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = []
ROOT_URLCONF = "mysite.urls"
